"""Red team 14 (issue 12): the README's key change as a technician types it, each
`appliance provision central-key` a real process on a real configuration file, with
keys made by OpenSSL, and the device that missed step 2 coming back after step 4.

- Held: every step's exit code and message (install, --add, the private key given by
  mistake, an unknown id, the last key, --remove without its id); a refused step
  leaves the file and the configuration byte for byte as they were.
- Bug (fixed): a refused `--remove` typo (nothing changed, two keys believed)
  turns the provisioning report's central_key line into FAIL with "get the key file
  from the central office again", and `provision report` says so from then on.
- Bug (fixed): a device that believes only the retired key, back after the
  change, counts every ack as forged and delivers nothing, while `appliance doctor`'s
  central_key line (the panel and the heartbeat) says OK with no next step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.central.receiver import run_receiver
from appliance.store.outbox import OutboxState
from appliance.sync.publisher import run_publisher
from appliance.system import config as config_mod
from appliance.system import doctor
from appliance.system.doctor import Verdict
from tests.helpers.central_keys import ed25519 as _key
from tests.helpers.sync_rig import (
    device_dead_letters,
    enqueue,
    make_config,
    outbox_state,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]


def _appliance(config_file: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", "--config", str(config_file),
                           *argv], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items()
                               if k not in ("NOTIFY_SOCKET",)})


def _device(tmp_path: Path) -> tuple[Path, Path, Path, str, Path, str]:
    keys = tmp_path / "keys"
    keys.mkdir()
    _old_key, old_pub, old_id = _key(keys, "old")
    new_key, new_pub, new_id = _key(keys, "new")
    etc = tmp_path / "etc"
    etc.mkdir()
    config_file = etc / "appliance.toml"
    config_file.write_text('[device]\nid = "kiosk-01"\nagency_code = "000.00.12.H42"\n'
                           '[mqtt]\nhost = "localhost"\n', encoding="utf-8")
    return config_file, old_pub, new_pub, old_id, new_key, new_id


def test_each_step_as_typed_with_its_exit_code_and_message(tmp_path: Path) -> None:
    config_file, old_pub, new_pub, old_id, new_key, new_id = _device(tmp_path)
    pem = config_file.parent / "central-acks.pem"
    first = _appliance(config_file, "provision", "central-key", str(old_pub))
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.startswith("ok") and old_id in first.stdout
    added = _appliance(config_file, "provision", "central-key", "--add", str(new_pub))
    assert added.returncode == 0 and f"{old_id}, {new_id}" in added.stdout, added.stdout
    doctor_out = _appliance(config_file, "doctor", "--json")
    line = next(c for c in json.loads(doctor_out.stdout)["checks"]
                if c["name"] == "central_key")
    assert line["verdict"] == "ok" and f"{old_id}, {new_id}" in line["summary"]

    kept = (pem.read_bytes(), config_file.read_bytes())
    refused = {
        ("--add", str(new_key)): "PRIVATE KEY block has no place",
        ("--remove", "0123456789abcdef"): "is not a key this device believes",
        ("--remove", old_id, str(new_pub)): "not both",
        ("--add", str(tmp_path / "nowhere.pub")): "cannot read the central public key",
        ("--add",): "give the central office's public key FILE",
    }
    for argv, said in refused.items():
        done = _appliance(config_file, "provision", "central-key", *argv)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert done.stdout.startswith("fail") and said in done.stdout, (argv, done.stdout)
        assert "->" in done.stdout and "Traceback" not in done.stderr
        assert (pem.read_bytes(), config_file.read_bytes()) == kept, argv
    bare = _appliance(config_file, "provision", "central-key", "--remove")
    assert bare.returncode == 2 and "expected one argument" in bare.stderr

    removed = _appliance(config_file, "provision", "central-key", "--remove", old_id)
    assert removed.returncode == 0 and removed.stdout.rstrip().endswith(new_id), removed
    last = _appliance(config_file, "provision", "central-key", "--remove", new_id)
    assert last.returncode == 1 and "is the only key this device believes" in last.stdout


def test_a_refused_remove_leaves_the_provisioning_report_as_it_was(tmp_path: Path):
    config_file, old_pub, new_pub, old_id, _new_key, new_id = _device(tmp_path)
    assert _appliance(config_file, "provision", "central-key", str(old_pub)).returncode == 0
    assert _appliance(config_file, "provision", "central-key", "--add",
                      str(new_pub)).returncode == 0
    typo = _appliance(config_file, "provision", "central-key", "--remove", old_id[:-1])
    assert typo.returncode == 1
    report = json.loads(_appliance(config_file, "provision", "report", "--json").stdout)
    line = next(c for c in report["checks"] if c["name"] == "central_key")
    assert line["verdict"] == "ok", line


def test_a_device_back_after_the_change_is_told_to_add_the_new_key(tmp_path, broker,
                                                                    services):
    keys = tmp_path / "keys"
    keys.mkdir()
    _old_key, old_pub, _old_id = _key(keys, "old")
    new_key, new_pub, _new_id = _key(keys, "new")
    config = make_config(tmp_path, broker.port)
    services(run_receiver, config_mod.with_overrides(
        config, central={"signing_key": str(new_key)},
        mqtt={"central_public_key": str(new_pub)}))
    device = config_mod.with_overrides(config, mqtt={"central_public_key": str(old_pub)})
    services(run_publisher, device)
    records = enqueue(device, 2)
    wait_for(lambda: device_dead_letters(device).get("forged", 0) >= 2, 30,
             "the new key's acks counted as forged")
    assert not any(outbox_state(device, r.record_id) is OutboxState.DELIVERED
                   for r in records)
    check = doctor.check_central_key(device)
    assert check.verdict is not Verdict.OK, check.summary
    assert "--add" in (check.next_step or ""), check.next_step
