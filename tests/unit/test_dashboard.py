"""The Grafana dashboard we ship: valid JSON, a Prometheus data source to choose, only metrics the endpoint exports."""

import json
import re
from pathlib import Path

import pytest
import yaml

from compute_endpoint.endpoint.metrics import EndpointMetrics

REPO = Path(__file__).parents[2]
DASHBOARD = REPO / "packaging" / "grafana" / "compute-endpoint.json"

# PromQL words that are not series names (functions are recognised by the "(" after them).
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return found


def expressions() -> list[str]:
    exprs = [target["expr"] for panel in panels() for target in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def series_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and legend text
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges ([5m], [$__rate_interval])
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    text = re.sub(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,[^)]*\)", r"\1", text)  # Grafana's helper
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        if not match.group(2) and match.group(1) not in _KEYWORDS:
            names.add(match.group(1))
    return names


def test_the_series_name_finder_reads_promql():
    assert series_names('histogram_quantile(0.9, sum by (le) (rate(a_bucket{instance=~"$x",k="v"}[$__rate_interval])))'
                        ) == {"a_bucket"}
    assert series_names("max(time() - b{x=\"1\"}) / c") == {"b", "c"}
    assert series_names("label_values(d_info, instance)") == {"d_info"}


def test_the_dashboard_is_valid_json_with_unique_panel_ids():
    data = dashboard()
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    assert data["title"] and data["uid"] == "compute-endpoint"
    assert all({"x", "y", "w", "h"} <= set(panel["gridPos"]) for panel in panels())


def test_the_data_source_is_a_variable_every_panel_uses():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]


def test_every_metric_the_dashboard_reads_is_one_the_endpoint_exports():
    exported = EndpointMetrics().names()
    used = set().union(*(series_names(expr) for expr in expressions()))
    assert used, "no expressions found"
    assert used - exported == set()


def test_the_dashboard_shows_what_an_operator_watches():
    exprs = "\n".join(expressions())
    for wanted in ("rate(compute_endpoint_tasks_completed_total", "rate(compute_endpoint_tasks_failed_total",
                   "histogram_quantile(0.99", "compute_endpoint_tasks_outstanding", "compute_endpoint_workers",
                   "compute_endpoint_blocks", "compute_endpoint_broker_reconnects_total"):
        assert wanted in exprs, wanted


@pytest.mark.parametrize("packager", ["deb", "rpm"])
def test_the_packages_install_the_dashboard(packager):
    contents = yaml.safe_load((REPO / "packaging" / "nfpm.yaml").read_text().replace("${VERSION}", "0"))["contents"]
    shipped = [c for c in contents if c["src"] == "packaging/grafana/compute-endpoint.json"
               and c.get("packager", packager) == packager]
    assert [c["dst"] for c in shipped] == ["/usr/share/compute-endpoint/grafana/compute-endpoint.json"]
