"""deploy/: the Kubernetes manifests and the Slurm script, checked without a cluster.

No apiserver can run here, so every manifest is validated strictly against the
OpenAPI schemas of several Kubernetes versions (kubernetes-validate, offline),
and the rules only the apiserver or soak itself knows are checked here: an
Indexed Job's podFailurePolicy constraints, soak's exit codes in that policy,
the shard count in the command against ``completions``, the environment soak
reads, the labels and ports the monitors, services and volumes refer to.
"""

from __future__ import annotations

import copy
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from soak.cli.run import run as run_command
from soak.errors import InfraError, ProfileError, SoakError, UsageError
from soak.profile import expand_fleet, validate_profile
from soak.shard import parse_shard, resolve_placement
from soak.summary import VERDICT_EXIT

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SBATCH = REPO / "deploy" / "slurm" / "soak-array.sbatch"
VERSIONS = ("1.31.0", "1.34.0", "1.37.0")
"""1.31: podFailurePolicy is GA and backoffLimitPerIndex / podReplacementPolicy are on by default."""
CRDS = {("monitoring.coreos.com/v1", "PodMonitor")}
"""Kinds of operators the validator has no schema for: checked by hand below."""
JOBS = ("soak-indexed-job.yaml", "soak-indexed-job-hostpath.yaml")
KVM_RESOURCE = "devices.kubevirt.io/kvm"


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def load_job(file: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((K8S / file).read_text())
    assert doc["kind"] == "Job"
    return doc


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    checked = 0
    for name, doc in documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
        except kubernetes_validate.SchemaNotFoundError:
            assert (doc["apiVersion"], doc["kind"]) in CRDS, f"{name}: no schema for {doc['kind']}"
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}/{doc['metadata']['name']} on {version}: {exc.message} "
                        f"at {'.'.join(map(str, exc.path))}")
    assert checked >= 6


def test_the_validator_catches_what_it_should() -> None:
    """A broken Job fails: proof that the validation above can fail."""
    job = load_job(JOBS[0])
    job["spec"]["podFailurePolicy"]["rules"][2]["onPodConditions"][0].pop("status")
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    job["spec"]["completionsMode"] = "Indexed"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, VERSIONS[0], strict=True)


@pytest.mark.parametrize("file", JOBS)
def test_the_indexed_job_obeys_the_apiserver_rules(file: str) -> None:
    """What the apiserver (pkg/apis/batch/validation) rejects and no schema says."""
    spec = load_job(file)["spec"]
    pod = spec["template"]["spec"]
    completions = spec["completions"]
    assert spec["completionMode"] == "Indexed"
    assert pod["restartPolicy"] == "Never", "podFailurePolicy needs restartPolicy Never"
    assert spec["podReplacementPolicy"] == "Failed", "podFailurePolicy allows only Failed"
    assert 0 <= spec["backoffLimitPerIndex"] <= 10, "a shard retried for ever never reports"
    assert completions <= 100_000, "backoffLimitPerIndex allows at most 1e5 completions"
    assert 0 <= spec["maxFailedIndexes"] <= completions
    assert 1 <= spec["parallelism"] <= completions
    rules = spec["podFailurePolicy"]["rules"]
    assert len(rules) <= 20
    names = {c["name"] for c in pod["containers"]}
    for rule in rules:
        assert rule["action"] in {"FailJob", "FailIndex", "Ignore", "Count"}
        assert ("onExitCodes" in rule) != ("onPodConditions" in rule), rule
        if codes := rule.get("onExitCodes"):
            values = codes["values"]
            assert codes.get("containerName") in names
            assert values == sorted(set(values)), "values must be unique and ordered"
            assert 0 < len(values) <= 255
            assert codes["operator"] in {"In", "NotIn"}
            assert codes["operator"] == "NotIn" or 0 not in values, "0 is a success, not a rule"
        for condition in rule.get("onPodConditions", []):
            assert condition["status"] in {"True", "False", "Unknown"}


@pytest.mark.parametrize("file", JOBS)
def test_the_failure_policy_maps_soak_s_exit_codes(file: str) -> None:
    rules = load_job(file)["spec"]["podFailurePolicy"]["rules"]
    by_action: dict[str, set[int]] = {}
    for rule in rules:
        if codes := rule.get("onExitCodes"):
            by_action.setdefault(rule["action"], set()).update(codes["values"])
    findings = VERDICT_EXIT["failures"]
    assert by_action["FailIndex"] == {findings, UsageError.exit_code, ProfileError.exit_code} == {1, 2}
    assert by_action["Count"] == {SoakError.exit_code, InfraError.exit_code, VERDICT_EXIT["infra-error"]}
    disruption = [r for r in rules if any(c["type"] == "DisruptionTarget" for c in r.get("onPodConditions", []))]
    assert [r["action"] for r in disruption] == ["Ignore"], "a lost node is retried, not counted"


def _parse_run(args: list[str]) -> dict[str, Any]:
    """The container's arguments as `soak run` parses them (nothing is run)."""
    with run_command.make_context("run", list(args), resilient_parsing=False) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize("file", JOBS)
def test_the_command_runs_one_shard_per_index_consistent_with_completions(file: str) -> None:
    job = load_job(file)
    spec, soak = job["spec"], container(job)
    argv = [*soak["command"], *soak.get("args", [])]
    assert argv[:2] == ["soak", "run"]
    template = argv[argv.index("--shard") + 1]
    assert template.startswith("$(JOB_COMPLETION_INDEX)/")
    assert parse_shard(template.replace("$(JOB_COMPLETION_INDEX)", "0")).count == spec["completions"]
    text = yaml.safe_load((K8S / "profile-configmap.yaml").read_text())["data"]["profile.toml"]
    profile = validate_profile(tomllib.loads(text), "configmap")
    fleet = expand_fleet(profile)
    assert len(fleet) >= spec["completions"], "a shard without VMs is refused (exit 2)"
    names = []
    for index in range(spec["completions"]):
        params = _parse_run([a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in argv[2:]])
        env = {"JOB_COMPLETION_INDEX": str(index), "POD_NAME": f"soak-{index}-abcde",
               "JOB_INDEX_FAILURE_COUNT": "1", "JOB_INDEX_IGNORED_FAILURE_COUNT": str(index)}
        placement = resolve_placement(
            profile, env,
            shard=params["shard"], attempt=params["attempt"], run_group="0e4c7f52-3f1a-4c1e-9a57-5d0c3b1f2a9e",
            host=f"node-{index}",
        )
        assert (placement.shard.index, placement.engine, placement.engine_job, placement.attempt) == (
            index, "kubernetes", f"soak-{index}-abcde", 1 + index)
        names += [vm.name for vm in placement.shard.select(fleet)]
        assert params["runs_root"] == Path("/runs") and params["pushgateway"]
    assert sorted(names) == sorted(vm.name for vm in fleet), "the indexes cover the fleet"


@pytest.mark.parametrize("file", JOBS)
def test_the_environment_gives_soak_its_host_attempt_and_run_group(file: str) -> None:
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container(load_job(file))["env"]}
    envvars = {p.name: p.envvar for p in run_command.params if isinstance(p, click.Option) and p.envvar}
    assert env[envvars["host"]] == "spec.nodeName"
    assert env[envvars["run_group"]] == "metadata.labels['batch.kubernetes.io/controller-uid']"
    assert env["JOB_INDEX_FAILURE_COUNT"] == "metadata.annotations['batch.kubernetes.io/job-index-failure-count']"
    assert env["JOB_INDEX_IGNORED_FAILURE_COUNT"] == (
        "metadata.annotations['batch.kubernetes.io/job-index-ignored-failure-count']")
    assert envvars["attempt"] not in env, "the attempt comes from the two failure counts"
    assert env["POD_NAME"] == "metadata.name"  # soak.shard reads it for the engine job


@pytest.mark.parametrize("file", JOBS)
def test_one_shard_per_node_and_its_volumes_and_ports(file: str) -> None:
    job = load_job(file)
    template, soak = job["spec"]["template"], container(job)
    labels = template["metadata"]["labels"]
    [term] = template["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    argv = soak["args"]
    port = int(argv[argv.index("--metrics-listen") + 1].rsplit(":", 1)[1])
    assert argv[argv.index("--metrics-listen") + 1].startswith("0.0.0.0:")
    assert {"name": "metrics", "containerPort": port} in soak["ports"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == port
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in soak["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes)
    claim = volumes[mounts["/runs"]]["persistentVolumeClaim"]["claimName"]
    assert "ReadWriteMany" in find("PersistentVolumeClaim", claim)["spec"]["accessModes"]
    profile_map = volumes[mounts["/etc/soak"]]["configMap"]["name"]
    assert "profile.toml" in find("ConfigMap", profile_map)["data"]
    assert soak["command"][2] == "/etc/soak/profile.toml"
    url = argv[argv.index("--pushgateway") + 1]
    service = find("Service", url.split("//")[1].split(":")[0])
    assert int(url.rsplit(":", 1)[1]) in {p["port"] for p in service["spec"]["ports"]}
    assert template["spec"]["terminationGracePeriodSeconds"] >= 60, "time to stop every guest in order"


def test_kvm_comes_from_a_device_plugin_or_a_privileged_host_path() -> None:
    plugin = container(load_job(JOBS[0]))
    assert plugin["resources"]["limits"][KVM_RESOURCE] == plugin["resources"]["requests"][KVM_RESOURCE] == "1"
    assert not plugin["securityContext"].get("privileged")
    host = load_job(JOBS[1])
    pod, soak = host["spec"]["template"]["spec"], container(host)
    assert soak["securityContext"]["privileged"] is True
    kvm = next(v for v in pod["volumes"] if v.get("hostPath", {}).get("path") == "/dev/kvm")
    assert kvm["hostPath"]["type"] == "CharDevice"
    assert {"name": kvm["name"], "mountPath": "/dev/kvm"} in soak["volumeMounts"]


def test_the_two_jobs_differ_only_in_how_they_reach_kvm() -> None:
    def without_kvm(job: dict[str, Any]) -> dict[str, Any]:
        job = copy.deepcopy(job)
        pod = job["spec"]["template"]["spec"]
        pod.pop("nodeSelector", None)
        soak = pod["containers"][0]
        soak.pop("securityContext")
        for section in soak["resources"].values():
            section.pop(KVM_RESOURCE, None)
        soak["volumeMounts"] = [m for m in soak["volumeMounts"] if m["mountPath"] != "/dev/kvm"]
        pod["volumes"] = [v for v in pod["volumes"] if v.get("hostPath", {}).get("path") != "/dev/kvm"]
        return job

    assert without_kvm(load_job(JOBS[0])) == without_kvm(load_job(JOBS[1]))


def test_the_pod_monitors_select_the_pods_and_ports_they_scrape() -> None:
    job = load_job(JOBS[0])
    shard_monitor = find("PodMonitor", "soak")
    template = job["spec"]["template"]
    assert shard_monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    [endpoint] = shard_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in container(job)["ports"]}
    assert endpoint["path"] == "/metrics"
    gateway_monitor = find("PodMonitor", "soak-pushgateway")
    gateway = find("Deployment", "soak-pushgateway")["spec"]
    pod_labels = gateway["template"]["metadata"]["labels"]
    assert gateway_monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert gateway["selector"]["matchLabels"].items() <= pod_labels.items()
    [endpoint] = gateway_monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True, "pushed job/instance labels must survive the scrape"
    ports = {p["name"] for p in gateway["template"]["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in ports


def test_the_sbatch_script_is_a_job_array_that_forwards_term_and_requeues() -> None:
    text = SBATCH.read_text()
    assert subprocess.run(["bash", "-n", str(SBATCH)], capture_output=True).returncode == 0
    directives = [shlex.split(line)[1] for line in text.splitlines() if line.startswith("#SBATCH ")]
    for wanted in ("--requeue", "--signal=B:TERM@120", "--gres=kvm:1", "--open-mode=append"):
        assert wanted in directives
    assert "trap forward TERM" in text and "--shard auto" in text
    assert "attempt-$attempt.log" in text, "each attempt logs to its own file"
