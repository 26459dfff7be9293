"""The served runner's process imports no flow: a child describes prefect.yaml's deployments and the runner rebuilds
them from that description, exactly as building them from the flows would."""

from __future__ import annotations

import json
import subprocess
import sys

from deployments.serve import build_deployments, deployments_from_description, describe_deployments


def test_deployments_rebuilt_from_their_description_are_the_ones_built_from_the_flows(monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "America/Sao_Paulo")
    built = build_deployments()
    rebuilt = deployments_from_description(json.loads(json.dumps(describe_deployments(built))))
    assert [d.model_dump(mode="json", exclude={"storage"}) for d in rebuilt] == [
        d.model_dump(mode="json", exclude={"storage"}) for d in built
    ]
    assert [d._parameter_openapi_schema for d in rebuilt] == [d._parameter_openapi_schema for d in built]
    assert {d.entrypoint_type.value for d in rebuilt} == {"module_path"}


def test_the_serving_process_loads_no_flow_and_no_pandas():
    script = (
        "import sys; from deployments.serve import deployments_from_description; "
        "print(sorted(m for m in sys.modules if m.startswith(('flows', 'pandas', 'vl_convert', 'altair'))))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
