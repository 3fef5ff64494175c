#!/usr/bin/python3
"""kafkajs 2.2.4 (npm, installed into tests/compat/js/node_modules by `npm ci`): admin, sendBatch,
a consumer group that commits and resumes, describeGroups, fetchTopicOffsetsByTimestamp. The
scenario itself is tests/compat/js/kafkajs_scenario.js; this wrapper starts the broker.
"""

import os
import subprocess

import harness
from harness import ScenarioError, log

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def run(ctx):
    if ctx.mock:
        log("mock: no CreateTopics/describeGroups on librdkafka's mock cluster; nothing to check")
        return
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "kafkajs")):
        raise ScenarioError(f"kafkajs is not installed: run `npm ci --prefix {JS_DIR}`")
    r = subprocess.run(["node", os.path.join(JS_DIR, "kafkajs_scenario.js"), ctx.bootstrap],
                       capture_output=True, text=True, timeout=150)
    print(r.stdout, end="")
    print(r.stderr, end="")
    if r.returncode != 0:
        raise ScenarioError(f"kafkajs scenario exited {r.returncode}")


if __name__ == "__main__":
    harness.main(run, {}, time_limit=180)
