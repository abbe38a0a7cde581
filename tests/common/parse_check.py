#!/usr/bin/env python3
"""Independent parsers for kiln's rendered files (a test oracle, not kiln code).

Usage: parse_check.py RENDER_DIR...   Walks each `kiln render` output and parses every file by
kind: JSON (daemon.json, CNI configs, plan.json), XML (firewalld), INI (systemd units via
configparser), Java properties (zoo.cfg), env files (KEY=VALUE as systemd and `docker
--env-file` read them; also /etc/default/* and firewalld.conf), Mesos flag files (one line). Prints a count per
kind; exits 1 on the first file that does not parse.
"""
import configparser
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^\"'\\]*$")
counts = {}


def kind_of(rel):
    name = os.path.basename(rel)
    if name.endswith(".json") or "/cni/" in rel or "/net.d/" in rel:
        return "json"
    if name.endswith(".xml"):
        return "xml"
    if name.endswith((".service", ".socket", ".target")) or "/system/" in rel and name.endswith(".conf"):
        return "unit"
    if name == "zoo.cfg":
        return "properties"
    if name.endswith(".env") or "/etc/default/" in rel or name == "firewalld.conf":
        return "env"
    if "/etc/mesos-master/" in rel or "/etc/mesos-slave/" in rel or rel.endswith("/etc/mesos/zk"):
        return "flag"
    return "other"


def check(path, rel):
    kind = kind_of(rel)
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8")
    if kind == "json":
        json.loads(text)
    elif kind == "xml":
        ET.fromstring(data)
    elif kind == "unit":
        cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
        cp.optionxform = str
        cp.read_string(text)
        if os.path.basename(os.path.dirname(rel)).endswith(".d"):
            # A drop-in (UNIT.d/NAME.conf) carries only the sections it changes.
            if not set(cp.sections()) & {"Unit", "Service", "Install", "Socket", "Timer"}:
                raise ValueError("drop-in without a unit section")
        elif "Unit" not in cp or ("Service" not in cp and "Install" not in cp):
            raise ValueError("unit without [Unit]/[Service]")
    elif kind == "properties":
        cp = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        cp.optionxform = str
        cp.read_string("[zoo]\n" + text)
        for key in ("tickTime", "initLimit", "syncLimit", "dataDir", "clientPort"):
            if key not in cp["zoo"]:
                raise ValueError(f"missing {key}")
            if key != "dataDir":
                int(cp["zoo"][key])
    elif kind == "env":
        for n, line in enumerate(text.splitlines(), 1):
            if line and not line.startswith("#") and not ENV_LINE.match(line):
                raise ValueError(f"line {n} is not KEY=VALUE without quotes: {line!r}")
    elif kind == "flag":
        lines = text.splitlines()
        if len(lines) != 1 or not lines[0].strip() or not text.endswith("\n"):
            raise ValueError("a Mesos flag file holds exactly one non-empty line")
    if kind != "other" and not text.endswith("\n"):
        raise ValueError("no trailing newline")
    counts[kind] = counts.get(kind, 0) + 1


def main():
    for root in sys.argv[1:]:
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    continue
                rel = os.path.relpath(path, root)
                try:
                    check(path, "/" + rel)
                except Exception as e:  # noqa: BLE001 - report any parser's complaint
                    print(f"{rel}: {e}", file=sys.stderr)
                    return 1
    print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
