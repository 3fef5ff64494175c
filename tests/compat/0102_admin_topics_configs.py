#!/usr/bin/python3
"""Admin APIs an operator or client calls, through both clients' admin interfaces:
CreateTopics with configs (and TOPIC_ALREADY_EXISTS for a second create, INVALID_PARTITIONS for
0 partitions), DescribeConfigs for a topic (the configs set, Kafka's names and defaults for the
rest), DeleteTopics (gone from metadata afterwards), ListTopics.
"""

import time

import harness
from harness import ScenarioError, check, check_eq, log

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic


def topic_names(admin):
    return set(admin.list_topics(timeout=10).topics)


def run(ctx):
    if ctx.mock:
        log("mock: no CreateTopics/DescribeConfigs/DeleteTopics; nothing to check")
        return
    admin = AdminClient({"bootstrap.servers": ctx.bootstrap})
    configs = {"retention.ms": "86400000", "cleanup.policy": "delete",
               "max.message.bytes": "2097152"}
    fs = admin.create_topics([NewTopic("adm-a", 3, 1, config=configs)], request_timeout=30)
    fs["adm-a"].result(timeout=30)
    ctx.wait_for_topic("adm-a", 3)

    try:
        admin.create_topics([NewTopic("adm-a", 3, 1)], request_timeout=30)["adm-a"].result(30)
        raise ScenarioError("second CreateTopics of adm-a succeeded")
    except KafkaException as e:
        check_eq(e.args[0].name(), "TOPIC_ALREADY_EXISTS", "second CreateTopics error")
    try:
        admin.create_topics([NewTopic("adm-zero", 0, 1)], request_timeout=30)["adm-zero"].result(30)
        raise ScenarioError("CreateTopics with 0 partitions succeeded")
    except KafkaException as e:
        check_eq(e.args[0].name(), "INVALID_PARTITIONS", "CreateTopics with 0 partitions error")
    except ValueError:
        pass  # some client versions refuse locally; nothing reached the broker

    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-a")
    described = admin.describe_configs([res], request_timeout=30)[res].result(30)
    for k, v in configs.items():
        check(k in described, f"DescribeConfigs lacks {k}")
        check_eq(described[k].value, v, f"DescribeConfigs {k}")
    check("retention.bytes" in described, "DescribeConfigs lacks the default retention.bytes")
    log(f"confluent: created with configs, described {len(described)} configs")

    kp = KafkaAdminClient(bootstrap_servers=ctx.bootstrap, request_timeout_ms=30000)
    kp.create_topics([KpNewTopic("adm-b", 2, 1, topic_configs={"retention.ms": "-1"})],
                     timeout_ms=30000)
    ctx.wait_for_topic("adm-b", 2)
    resp = kp.describe_configs([KpConfigResource(ConfigResourceType.TOPIC, "adm-b")])
    entries = {e[0]: e[1] for r in resp for res_ in r.resources for e in res_[4]}
    check_eq(entries.get("retention.ms"), "-1", "kafka-python DescribeConfigs retention.ms")
    check({"adm-a", "adm-b"} <= set(kp.list_topics()), "kafka-python list_topics")
    kp.delete_topics(["adm-b"], timeout_ms=30000)
    kp.close()
    log("kafka-python: created, described, listed, deleted")

    admin.delete_topics(["adm-a"], request_timeout=30)["adm-a"].result(30)
    deadline = time.monotonic() + 30
    while topic_names(admin) & {"adm-a", "adm-b"}:
        check(time.monotonic() < deadline, "deleted topics still listed after 30 s")
        time.sleep(0.5)
    log("both topics gone after DeleteTopics")


if __name__ == "__main__":
    harness.main(run, {}, time_limit=120)
