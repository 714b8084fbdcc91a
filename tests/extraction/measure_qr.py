"""What the CCCD QR cross-check does to the card fields OCR reads.

Draws the front of a chip CCCD for generated people (appliance.demo.synth's sample
people), pastes the card's QR code made by `qrencode` (segno when it is missing),
reads the card with the OCR engine, extracts the cccd-front fields, then applies the
QR cross-check (extraction/qr.py), and scores the four checked fields against the
truth, before and after:

- right: valid and equal to the truth;
- flagged: not valid (uncertain, problem, missing), or carrying qr.mismatch;
- wrong: valid, unflagged and different (the failure that matters).

    python -m tests.extraction.measure_qr --seeds 1-20

Lives under tests/ because it draws with appliance.demo and the test's card drawing.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from collections import Counter

from tests.helpers.seeds import seed_ranges

CHECKED = ("cccd", "full_name", "birth_date", "gender")


def score(fields: dict, truth: dict[str, str]) -> dict[str, str]:
    out = {}
    for name in CHECKED:
        f = fields.get(name)
        if f is None or f.status != "valid" or "qr.mismatch" in f.flags:
            out[name] = "flagged"
        elif f.value == truth[name]:
            out[name] = "right"
        else:
            out[name] = "wrong"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1-20")
    args = parser.parse_args()

    from appliance.demo.synth import sample_fields
    from appliance.extraction import qr
    from appliance.extraction.fields import extract_pages
    from appliance.ocr.engine import OcrEngine
    from tests.extraction.test_qr import card_page, qrencode, segno_qr

    encode = qrencode if shutil.which("qrencode") else segno_qr
    engine = OcrEngine.load(threads=2)
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    caught: list[str] = []
    decode_s: list[float] = []
    for seed in seed_ranges(args.seeds):
        p = sample_fields(random.Random(seed))
        person = {"cccd": p["cccd"], "full_name": p["full_name"],
                  "birth_date": p["birth_date"], "gender": p["gender"]}
        text = "|".join((p["cccd"], "", p["full_name"].title(),
                         p["birth_date"].replace("/", ""), p["gender"], p["address"],
                         "10052021"))
        image = card_page(encode(text), person)
        ocr = extract_pages([engine.read(image).lines], paper_type="cccd-front")
        t0 = time.perf_counter()
        checked = qr.apply(ocr, [image])
        decode_s.append(time.perf_counter() - t0)
        b, a = score(ocr.fields, person), score(checked.fields, person)
        before.update(f"{n}:{s}" for n, s in b.items())
        after.update(f"{n}:{s}" for n, s in a.items())
        for name in CHECKED:
            if b[name] != a[name]:
                caught.append(f"seed {seed} {name}: OCR {ocr.fields[name].value!r} "
                              f"({b[name]}), truth {person[name]!r} -> {a[name]} "
                              f"{checked.fields[name].flags}")
    n = len(seed_ranges(args.seeds))
    print(f"{n} card scans, encoder {encode.__name__}")
    for label, counts in (("OCR only", before), ("OCR + QR", after)):
        totals = Counter(k.split(":")[1] for k in counts.elements())
        print(f"{label:>9}: right {totals['right']}, flagged {totals['flagged']}, "
              f"wrong unflagged {totals['wrong']} (of {n * len(CHECKED)})")
        for name in CHECKED:
            print(f"{'':>11}{name}: " + ", ".join(
                f"{s} {counts[f'{name}:{s}']}" for s in ("right", "flagged", "wrong")))
    print("changed by the QR:", *caught, sep="\n  ")
    decode_s.sort()
    print(f"QR decode + cross-check per card: median {decode_s[len(decode_s) // 2]:.3f} s")


if __name__ == "__main__":
    main()
