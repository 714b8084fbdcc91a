"""How `appliance web` configures gunicorn (the browser tests run the real thing)."""

from __future__ import annotations

import argparse

from appliance.system.config import Config, with_overrides
from appliance.web import server


def test_gunicorn_options_follow_the_config():
    config = with_overrides(Config(), web={"bind": "127.0.0.1:9123", "threads": 6})
    opts = server.gunicorn_options(config)
    assert opts["bind"] == ["127.0.0.1:9123"]
    assert (opts["worker_class"], opts["threads"], opts["timeout"]) == (
        "appliance.web.gthread.HeadFirstWorker", 6, 60)
    assert opts["preload_app"] is False


def test_options_reach_gunicorn_and_the_app_gets_our_config(tmp_path):
    config = with_overrides(Config(), paths={"data_dir": str(tmp_path)},
                            web={"bind": "127.0.0.1:9124", "threads": 3})
    app = server.WebServer(config)
    assert app.cfg.worker_class_str == "appliance.web.gthread.HeadFirstWorker"
    assert app.cfg.threads == 3
    assert app.cfg.bind == ["127.0.0.1:9124"] and app.cfg.timeout == 60
    assert not app.cfg.preload_app
    flask_app = app.load()
    assert flask_app.config["APPLIANCE"] is config


def test_web_arguments():
    parser = argparse.ArgumentParser()
    server.add_web_arguments(parser)
    args = parser.parse_args(["--bind", "0.0.0.0:80", "--threads", "2"])
    assert (args.bind, args.threads) == ("0.0.0.0:80", 2)
