"""The Elasticsearch test node (tools/elasticsearch_node.py) and its fixtures, on real nodes.

The shared node (es_url) is the one `make test` starts for the whole run; the dedicated
node is stopped and restarted the way fault-injection tests do it."""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest

import elasticsearch_node
from elasticsearch_node import http_json
from net_helpers import non_loopback_address, refuses, url_port


def test_shared_node_is_healthy_and_the_pinned_version(es_url):
    status, health = http_json(f"{es_url}/_cluster/health")
    assert status == 200
    if health["status"] != "green":
        # Only acceptable non-green state on one node: replicas of other tests' indices,
        # which can never be assigned on a single node.
        assert health["status"] == "yellow", health
        _, shards = http_json(f"{es_url}/_cat/shards?format=json&h=index,prirep,state")
        unassigned = [s for s in shards if s["state"] != "STARTED"]
        assert unassigned and all(s["prirep"] == "r" for s in unassigned), shards
    assert health["number_of_nodes"] == 1
    status, nodes = http_json(f"{es_url}/_nodes/_local/http,transport")
    assert status == 200
    (node,) = nodes["nodes"].values()
    assert node["version"] == elasticsearch_node.VERSION == "8.19.21"


def test_shared_node_listens_on_loopback_only(es_url):
    if urllib.parse.urlsplit(es_url).hostname != "127.0.0.1":
        pytest.skip(f"UNIONCAT_ES_URL={es_url} is not a node of ours")
    _, nodes = http_json(f"{es_url}/_nodes/_local/http,transport")
    (node,) = nodes["nodes"].values()
    bound = node["http"]["bound_address"] + node["transport"]["bound_address"]
    assert bound and all(a.startswith("127.0.0.1:") for a in bound), bound
    assert node["http"]["publish_address"] == f"127.0.0.1:{url_port(es_url)}"
    other = non_loopback_address()
    if other is not None:
        assert refuses(url_port(es_url), other), f"reachable on {other}"


def test_dedicated_node_stops_and_restarts_with_its_data(es_node_factory):
    node = es_node_factory()
    url, pid = node.url, node.pid
    assert node.is_running() and node.health_status == "green"
    assert node.health()["status"] == "green"
    assert Path(node.base_dir, "pid").read_text().strip() == str(pid)

    status, _ = http_json(f"{url}/books", "PUT",
                          {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    assert status == 200
    status, _ = http_json(f"{url}/books/_doc/rec1?refresh=true", "PUT",
                          {"title": "Der Zauberberg", "lib": "DNB"})
    assert status == 201

    assert node.stop() is True
    assert not node.is_running()
    assert not os.path.exists(f"/proc/{pid}") or not elasticsearch_node._pid_alive(pid)
    assert not (node.base_dir / "pid").exists()
    assert refuses(url_port(url))
    assert node.stop() is False                     # stopping twice is harmless

    node.restart()
    assert node.url == url and node.pid != pid
    assert node.health_status == "green"
    status, doc = http_json(f"{url}/books/_doc/rec1")
    assert status == 200 and doc["_source"]["title"] == "Der Zauberberg"
    status, hits = http_json(f"{url}/books/_search", "POST",
                             {"query": {"match": {"title": "zauberberg"}}})
    assert status == 200 and hits["hits"]["total"]["value"] == 1
