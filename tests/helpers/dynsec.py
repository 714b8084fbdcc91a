"""A mosquitto whose ACL refuses subscriptions, changed live by the office's admin.

mosquitto's acl_file grants every SUBSCRIBE and filters messages when it delivers them;
other brokers (AWS IoT, EMQX) answer a SUBSCRIBE the ACL denies with a
failing SUBACK ("Not authorized", 0x87). mosquitto's own dynamic security plugin
answers the same way, so it stands for them here: its configuration is made by
`mosquitto_ctrl dynsec init` with an admin password made at test time, clients
without a username (the appliance's, identified by their certificates in an office)
fall in its anonymous group, and that group's role denies the topics a test names.
`Office.allow` takes a denial away on the running broker, as an operator would, with
`mosquitto_ctrl`.
"""

from __future__ import annotations

import glob
import json
import secrets
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers.mosquitto import MosquittoProcess

PLUGINS = glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")
# The mark of every test that starts such a broker (the plugin ships with mosquitto).
NEEDED = pytest.mark.skipif(not PLUGINS, reason="mosquitto's dynamic security plugin missing")
ROLE = "office"


@dataclass
class Office:
    """The broker's administrator."""

    broker: MosquittoProcess
    password: str

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            ["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(self.broker.port),
             "-u", "admin", "-P", self.password, "dynsec", *args],
            capture_output=True, text=True, timeout=20, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def allow(self, topic: str) -> None:
        """Take the denial of subscriptions to `topic` away, now (dynsec then
        disconnects the role's clients: they resume by connecting again)."""
        self.ctl("removeRoleACL", ROLE, "subscribePattern", topic)

    def set_default_subscribe(self, allow: bool) -> None:
        """Change the default for subscriptions, now; no client is disconnected, so
        they resume only by asking again. Sent as dynsec's JSON command as the admin:
        mosquitto_ctrl 2.0.11's own setDefaultACLAccess says OK and changes nothing."""
        answers: list[bytes] = []
        admin = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="office-admin",
                            protocol=mqtt.MQTTv5)
        admin.username_pw_set("admin", self.password)
        admin.on_message = lambda c, u, m: answers.append(m.payload)
        admin.connect("127.0.0.1", self.broker.port)
        admin.loop_start()
        try:
            admin.subscribe("$CONTROL/dynamic-security/v1/response", qos=1)
            time.sleep(0.3)
            admin.publish("$CONTROL/dynamic-security/v1", json.dumps({"commands": [{
                "command": "setDefaultACLAccess",
                "acls": [{"acltype": "subscribe", "allow": allow}]}]}),
                qos=1).wait_for_publish(10)
            deadline = time.monotonic() + 10
            while not answers and time.monotonic() < deadline:
                time.sleep(0.05)
            assert answers and b"error" not in answers[0], answers
        finally:
            admin.disconnect()
            admin.loop_stop()
        assert ("allow" if allow else "deny") in self.ctl("getDefaultACLAccess").split(
            "subscribe ")[1].splitlines()[0]


def start(brokers: object, folder: Path, deny_subscriptions: Sequence[str] = (), *,
          allow_subscriptions: Sequence[str] = (), default_subscribe: bool = True) -> Office:
    """A broker (through the test's `brokers` fixture) that answers "Not authorized" to
    anonymous clients subscribing to any of `deny_subscriptions`, and to every other
    topic but `allow_subscriptions` when `default_subscribe` is false."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "dynamic-security.json"
    password = secrets.token_hex(12)
    subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(config), "admin", password],
                   check=True, capture_output=True, timeout=20)
    settings = json.loads(config.read_text(encoding="utf-8"))
    settings["defaultACLAccess"] = {"publishClientSend": True, "publishClientReceive": True,
                                    "subscribe": default_subscribe, "unsubscribe": True}
    settings.setdefault("groups", []).append({"groupname": "anonymous",
                                              "roles": [{"rolename": ROLE}]})
    settings["anonymousGroup"] = "anonymous"
    settings["roles"].append({"rolename": ROLE, "acls": [
        {"acltype": "subscribePattern", "topic": topic, "priority": 0, "allow": allow}
        for topics, allow in ((deny_subscriptions, False), (allow_subscriptions, True))
        for topic in topics]})
    config.write_text(json.dumps(settings, indent=1), encoding="utf-8")
    broker = brokers.start(extra_config=f"plugin {PLUGINS[0]}\n"  # type: ignore[attr-defined]
                           f"plugin_opt_config_file {config}\n")
    return Office(broker, password)
