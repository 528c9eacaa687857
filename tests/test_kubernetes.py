"""The Kubernetes manifests of every variant that asks for them, checked without a cluster.

Each variant is rendered once (tasks skipped) and each overlay built with `kubectl kustomize`.
The output must pass `kubernetes-validate --strict` for KUBERNETES_VERSION (the operator's
custom resources: their vendored schemas, made strict), checkov with no failed check
(test_checkov.py: a skip needs its reason inline), the restricted Pod Security Standard field
by field, and reflect the variant's answers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from faults import timing_from
from harness import copier_questions, tool
from variants import VARIANTS, Variant

# The Kubernetes version the manifests are validated against, as the generated Makefile's
# check-deploy does (kubernetes-validate ships the schemas of each version: it runs offline).
KUBERNETES_VERSION = copier_questions()["kubernetes_version"]["default"]
OVERLAYS = ("staging", "production")
KUBERNETES_VARIANTS = [v for v in VARIANTS if v.named("has_kubernetes")]
SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule_v1.json",
}
POD_TEMPLATES = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Volume types the restricted Pod Security Standard admits.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}

# With the other users of the `rendered` fixture on one xdist worker: every variant is
# rendered once per run.
pytestmark = [pytest.mark.fast, pytest.mark.xdist_group("rendered")]

parametrize_variants = pytest.mark.parametrize(
    "variant", KUBERNETES_VARIANTS, ids=[v.id for v in KUBERNETES_VARIANTS]
)


@dataclass
class Built:
    """One variant's rendered project and the output of `kubectl kustomize` per overlay."""

    project: Path
    overlays: dict[str, Path]

    def documents(self, overlay: str) -> list[dict[str, Any]]:
        text = self.overlays[overlay].read_text(encoding="utf-8")
        return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(directory: Path) -> str:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return result.stdout


def build(directory: Path, rendered: dict[str, Path]) -> None:
    """Build each overlay of every rendered Kubernetes variant into `directory/manifests`,
    then run kubernetes-validate once over all of them (it takes seconds to start):
    validation.txt. test_checkov.py runs checkov over the same manifests."""
    manifests = directory / "manifests"
    manifests.mkdir()
    for variant in KUBERNETES_VARIANTS:
        project = rendered[variant.id]
        for overlay in OVERLAYS:
            (manifests / f"{variant.id}--{overlay}.yaml").write_text(
                kustomize(project / "deploy" / "kubernetes" / "overlays" / overlay),
                encoding="utf-8",
            )
    files = sorted(str(path) for path in manifests.iterdir())
    validation = subprocess.run(
        [
            tool("kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    (directory / "validation.txt").write_text(validation.stdout + validation.stderr)


@pytest.fixture(scope="module")
def built_directory(tmp_path_factory: pytest.TempPathFactory, rendered: dict[str, Path]) -> Path:
    """The output of `build`, once per run (this module is in the `rendered` xdist group)."""
    directory = tmp_path_factory.mktemp("kubernetes-manifests")
    build(directory, rendered)
    return directory


@pytest.fixture(scope="module")
def built(built_directory: Path, rendered: dict[str, Path]) -> dict[str, Built]:
    return {
        variant.id: Built(
            rendered[variant.id],
            {
                overlay: built_directory / "manifests" / f"{variant.id}--{overlay}.yaml"
                for overlay in OVERLAYS
            },
        )
        for variant in KUBERNETES_VARIANTS
    }


@pytest.fixture(scope="module")
def validation(built_directory: Path) -> str:
    """The report of `kubernetes-validate --strict`, one line per resource."""
    return (built_directory / "validation.txt").read_text()


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every object that makes pods."""
    for doc in documents:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in POD_TEMPLATES:
            yield name, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield name, doc["spec"]


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Every field of the restricted Pod Security Standard (baseline included) that this pod
    spec breaks, plus the hardening the template promises: fixed UID/GID, read-only root
    filesystem with /tmp on an emptyDir, no service account token."""
    found = []
    pod_context = pod.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        if pod.get(field):
            found.append(f"pod: {field} is set")
    if pod.get("automountServiceAccountToken") is not False:
        found.append("pod: automountServiceAccountToken is not false")
    if pod_context.get("runAsNonRoot") is not True:
        found.append("pod: runAsNonRoot is not true")
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        if not isinstance(pod_context.get(field), int) or pod_context[field] < 1:
            found.append(f"pod: {field} is not a fixed non-root id")
    if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        found.append("pod: seccompProfile is not RuntimeDefault")
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for name, volume in volumes.items():
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {name}: {', '.join(sorted(kinds))} is not allowed")
    for container in pod.get("initContainers", []) + pod["containers"]:
        where = f"container {container['name']}"
        context = container.get("securityContext", {})
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation is not false")
        if context.get("privileged"):
            found.append(f"{where}: privileged")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            found.append(f"{where}: capabilities.drop is not [ALL]")
        if set(context.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}: adds capabilities")
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            found.append(f"{where}: runAsNonRoot is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) in (None, 0):
            found.append(f"{where}: runs as root")
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}: seccompProfile is not RuntimeDefault")
        if context.get("readOnlyRootFilesystem") is not True:
            found.append(f"{where}: readOnlyRootFilesystem is not true")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{where}: procMount")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{where}: hostPort")
        tmp = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            found.append(f"{where}: /tmp is not an emptyDir")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            if set(resources.get(kind, {})) != {"cpu", "memory"}:
                found.append(f"{where}: {kind} lack cpu or memory")
    return found


def strict(schema: Any) -> Any:
    """The schema with unknown properties refused wherever it lists the known ones."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


def by_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(documents, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def settings(documents: list[dict[str, Any]]) -> dict[str, str]:
    config_map = one(documents, "ConfigMap")
    data: dict[str, str] = config_map["data"]
    return data


def expected_secret_keys(variant: Variant) -> set[str]:
    keys = set()
    if variant.has("database", "postgresql"):
        keys.add("DATABASE_URL")
    if variant.named("has_users"):
        keys.add("JWT_SECRET_KEY")
    if variant.named("has_static_api_keys"):
        keys.add("API_KEY_HASHES")
    if variant.has("rate_limiter", "redis"):
        keys.add("REDIS_URL")
    if variant.named("has_metrics"):
        keys.add("METRICS_TOKEN")
    if variant.named("has_sentry"):
        keys.add("SENTRY_DSN")
    if variant.named("has_backups"):
        keys.add("BACKUP_SIGNING_KEY")
    return keys


def expected_egress_ports(variant: Variant) -> set[int]:
    ports = {53}
    if variant.has("database", "postgresql"):
        ports.add(5432)
    if variant.has("rate_limiter", "redis"):
        ports.add(6379)
    if variant.named("has_outbound") or variant.named("has_sentry"):
        ports.add(443)
    if variant.named("has_tracing"):
        ports.add(4318)
    if variant.named("has_backup_metrics"):
        ports.add(443)  # the backups' bucket, listed for the backup_* metrics
    return ports


def test_restricted_violations_finds_each_broken_field() -> None:
    container = {
        "name": "app",
        "securityContext": {"capabilities": {"drop": ["NET_RAW"], "add": ["SYS_ADMIN"]}},
        "ports": [{"containerPort": 8000, "hostPort": 8000}],
    }
    pod = {
        "hostNetwork": True,
        "containers": [container],
        "volumes": [{"name": "h", "hostPath": {}}],
    }
    found = "\n".join(restricted_violations(pod))
    for broken in (
        "hostNetwork",
        "automountServiceAccountToken",
        "pod: runAsNonRoot",
        "runAsUser is not a fixed",
        "pod: seccompProfile",
        "hostPath is not allowed",
        "app: allowPrivilegeEscalation",
        "app: capabilities.drop",
        "app: adds capabilities",
        "app: runs as root",
        "app: readOnlyRootFilesystem",
        "app: hostPort",
        "app: /tmp is not an emptyDir",
        "app: limits lack",
    ):
        assert broken in found


@parametrize_variants
def test_overlays_pass_kubernetes_validate_strict(
    variant: Variant, built: dict[str, Built], validation: str
) -> None:
    custom = {kind for _, kind in CUSTOM_RESOURCES}
    for overlay, path in built[variant.id].overlays.items():
        lines = [line for line in validation.splitlines() if f" {path} " in f"{line} "]
        problems = [line for line in lines if not line.startswith(("INFO", "WARN"))]
        assert problems == [], "\n".join(lines)
        passed = sorted(
            line.split(" passed for resource ")[1].split(" against ")[0]
            for line in lines
            if " passed for resource " in line
        )
        expected = sorted(
            f"{doc['kind'].lower()}/{doc['metadata']['name']}"
            for doc in built[variant.id].documents(overlay)
            if doc["kind"] not in custom
        )
        assert passed == expected, "\n".join(lines)
        # The custom resources have no schema there: the next test checks them.
        skipped = [line for line in lines if line.startswith("WARN")]
        assert all("Couldn't find schema for kind" in line for line in skipped), skipped


@parametrize_variants
def test_custom_resources_match_the_operator_schemas(
    variant: Variant, built: dict[str, Built]
) -> None:
    for overlay in OVERLAYS:
        for doc in built[variant.id].documents(overlay):
            schema_file = CUSTOM_RESOURCES.get((doc["apiVersion"], doc["kind"]))
            if schema_file is None:
                continue
            schema = strict(json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8")))
            # metadata is the API server's ObjectMeta, which the CRD schema leaves open.
            schema["properties"]["metadata"].pop("additionalProperties", None)
            # The operator's patterns are Go regexps ("(?i)" mid-pattern): not checked as
            # schema, only used.
            validator = jsonschema.validators.validator_for(schema)(schema)
            validator.validate(doc)


@parametrize_variants
def test_every_pod_meets_the_restricted_pod_security_standard(
    variant: Variant, built: dict[str, Built]
) -> None:
    for overlay in OVERLAYS:
        documents = built[variant.id].documents(overlay)
        namespace = one(documents, "Namespace")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert one(documents, "ServiceAccount")["automountServiceAccountToken"] is False
        pods = dict(pod_specs(documents))
        assert pods
        assert {name: restricted_violations(pod) for name, pod in pods.items()} == {
            name: [] for name in pods
        }
        for doc in documents:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == namespace["metadata"]["name"]


@parametrize_variants
def test_probes_and_shutdown_follow_the_service_settings(
    variant: Variant, built: dict[str, Built]
) -> None:
    for overlay in OVERLAYS:
        documents = built[variant.id].documents(overlay)
        env = settings(documents)
        pod = one(documents, "Deployment")["spec"]["template"]["spec"]
        (app,) = pod["containers"]
        assert app["args"] == ["serve"]
        port = app["ports"][0]
        assert (port["name"], port["containerPort"]) == ("http", int(env["PORT"]))
        assert env["HOST"] == "0.0.0.0"
        for probe, path in (
            ("startupProbe", "/health/startup"),
            ("livenessProbe", "/health/live"),
            ("readinessProbe", "/health/ready"),
        ):
            assert app[probe]["httpGet"] == {"path": path, "port": "http"}
        drain = float(env["SHUTDOWN_DRAIN_SECONDS"]) + float(env["GRACEFUL_SHUTDOWN_TIMEOUT"])
        assert pod["terminationGracePeriodSeconds"] > drain
        service = one(documents, "Service")
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert service["spec"]["selector"] == pod_labels(documents)


@parametrize_variants
def test_rollout_timing_leaves_no_gap(variant: Variant, built: dict[str, Built]) -> None:
    """A draining pod leaves the endpoints before it stops serving, SIGKILL never cuts the
    drain short, and a rolling update keeps every pod until its replacement is ready: the
    values tests/test_faults.py proves sufficient behind a load balancer."""
    for overlay in OVERLAYS:
        documents = built[variant.id].documents(overlay)
        timing = timing_from(one(documents, "Deployment"), settings(documents))
        assert timing.gaps() == [], f"{variant.id} {overlay}"
        questions = copier_questions()
        assert timing.period == questions["readiness_period_seconds"]["default"]
        assert timing.failures == questions["readiness_failure_threshold"]["default"]


def pod_labels(documents: list[dict[str, Any]]) -> dict[str, str]:
    selector: dict[str, str] = one(documents, "Deployment")["spec"]["selector"]["matchLabels"]
    return selector


@parametrize_variants
def test_scaling_matches_the_database(variant: Variant, built: dict[str, Built]) -> None:
    """Stateless pods autoscale and rolling updates never go below the disruption budget;
    a SQLite file on a volume means one pod, replaced, not rolled."""
    for overlay in OVERLAYS:
        documents = built[variant.id].documents(overlay)
        deployment = one(documents, "Deployment")
        if variant.has("database", "sqlite"):
            assert deployment["spec"]["replicas"] == 1
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}
            assert by_kind(documents, "HorizontalPodAutoscaler") == []
            assert by_kind(documents, "PodDisruptionBudget") == []
            claim = one(documents, "PersistentVolumeClaim")
            volumes = deployment["spec"]["template"]["spec"]["volumes"]
            assert {
                "name": "data",
                "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
            } in volumes
            assert settings(documents)["DATABASE_URL"].startswith("sqlite:////app/data/")
            continue
        assert "replicas" not in deployment["spec"]
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        autoscaler = one(documents, "HorizontalPodAutoscaler")
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        budget = one(documents, "PodDisruptionBudget")
        assert budget["spec"]["selector"]["matchLabels"] == pod_labels(documents)
        assert 1 <= budget["spec"]["maxUnavailable"] < autoscaler["spec"]["minReplicas"]
        assert by_kind(documents, "PersistentVolumeClaim") == []
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }


@parametrize_variants
def test_overlays_differ_in_image_resources_and_bounds(
    variant: Variant, built: dict[str, Built]
) -> None:
    def shape(overlay: str) -> tuple[Any, ...]:
        documents = built[variant.id].documents(overlay)
        app = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        bounds = [
            (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
            for hpa in by_kind(documents, "HorizontalPodAutoscaler")
        ]
        return app["image"], json.dumps(app["resources"]), bounds

    staging, production = shape("staging"), shape("production")
    assert staging[0] != production[0]
    assert staging[1] != production[1]
    if not variant.has("database", "sqlite"):
        assert staging[2] != production[2]
    # Both run the image the base names, from the registry each overlay sets, at a fixed tag.
    for image, _, _ in (staging, production):
        name, tag = image.rsplit(":", 1)
        assert name.endswith("/" + slug_of(built[variant.id])), image
        assert tag not in ("", "latest"), image


def slug_of(built: Built) -> str:
    answers = yaml.safe_load((built.project / ".copier-answers.yml").read_text(encoding="utf-8"))
    return str(answers["project_slug"])


@parametrize_variants
def test_manifests_reflect_the_answers(variant: Variant, built: dict[str, Built]) -> None:
    slug = slug_of(built[variant.id])
    for overlay in OVERLAYS:
        documents = built[variant.id].documents(overlay)
        pod = one(documents, "Deployment")["spec"]["template"]["spec"]
        containers = pod.get("initContainers", []) + pod["containers"]

        # Secrets by reference only, one key per secret the answers need.
        assert by_kind(documents, "Secret") == []
        references = [
            item["valueFrom"]["secretKeyRef"]
            for container in containers
            for item in container.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        ]
        own = [ref for ref in references if ref["name"] == f"{slug}-secrets"]
        assert {ref["key"] for ref in own} == expected_secret_keys(variant)
        # With backups and Prometheus, the app lists the bucket with read-only credentials.
        reader = {ref["key"] for ref in references if ref["name"] == f"{slug}-backup"}
        if variant.named("has_backup_metrics"):
            assert reader == {"METRICS_AWS_ACCESS_KEY_ID", "METRICS_AWS_SECRET_ACCESS_KEY"}
        else:
            assert reader == set()
        assert len(own) + len(reader) == len(references)
        for container in pod.get("initContainers", []):
            # `migrate` gets only what its settings cannot start without in production
            # (test_kubernetes_env.py starts each container's settings from the overlay).
            keys = {item["name"] for item in container.get("env", [])}
            needed = {"DATABASE_URL", "JWT_SECRET_KEY", "METRICS_TOKEN", "BACKUP_SIGNING_KEY"}
            assert keys <= needed & expected_secret_keys(variant)
        for container in containers:
            assert container["envFrom"] == [
                {"configMapRef": {"name": one(documents, "ConfigMap")["metadata"]["name"]}}
            ]
        assert not set(settings(documents)) & expected_secret_keys(variant)

        # Migrations: an init container of every pod, only with a database; never a Job.
        init = [c["args"] for c in pod.get("initContainers", [])]
        assert init == ([["migrate"]] if variant.named("has_db") else [])
        assert by_kind(documents, "Job") == []
        # The only CronJob is the backup schedule (test_backup_cronjob_follows_the_answers).
        cronjobs = [doc["metadata"]["name"] for doc in by_kind(documents, "CronJob")]
        assert cronjobs == ([f"{slug}-backup"] if variant.named("has_backups") else [])

        # Egress: DNS and what was chosen, nothing else; HTTP in.
        policies = {
            doc["metadata"]["name"]: doc["spec"] for doc in by_kind(documents, "NetworkPolicy")
        }
        assert policies["default-deny"] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }
        own_policy = policies[slug]
        assert own_policy["podSelector"]["matchLabels"] == pod_labels(documents)
        assert own_policy["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
        egress = own_policy["egress"]
        egress_ports = {port["port"] for rule in egress for port in rule["ports"]}
        assert egress_ports == expected_egress_ports(variant)
        assert all(port["protocol"] in ("TCP", "UDP") for r in egress for port in r["ports"])

        # Monitoring: only with Prometheus, and the rules are monitoring/alerts.yml's.
        monitors = by_kind(documents, "ServiceMonitor")
        rules = by_kind(documents, "PrometheusRule")
        if variant.named("has_metrics"):
            (monitor,) = monitors
            endpoint = monitor["spec"]["endpoints"][0]
            assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
            assert endpoint["authorization"]["credentials"] == {
                "name": f"{slug}-secrets",
                "key": "METRICS_TOKEN",
            }
            service = one(documents, "Service")
            assert monitor["spec"]["selector"]["matchLabels"] == pod_labels(documents)
            # The Service's name is the job label that the alert rules select.
            assert service["metadata"]["name"] == slug
            alerts = yaml.safe_load(
                (built[variant.id].project / "monitoring" / "alerts.yml").read_text(
                    encoding="utf-8"
                )
            )
            (rule,) = rules
            assert rule["spec"] == alerts
        else:
            assert monitors == rules == []

        # Settings that follow an answer.
        env = settings(documents)
        assert ("OIDC_ISSUER" in env) == variant.has("auth", "oidc")
        assert ("OTEL_EXPORTER_OTLP_ENDPOINT" in env) == variant.named("has_tracing")
        assert ("DATABASE_URL" in env) == variant.has("database", "sqlite")


@parametrize_variants
def test_docs_say_how_to_deploy(variant: Variant, built: dict[str, Built]) -> None:
    page = (built[variant.id].project / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    slug = slug_of(built[variant.id])
    commands = page.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "kubectl apply -k deploy/kubernetes/overlays/staging" in commands
    # The Secret with exactly the keys the pods read.
    keys = expected_secret_keys(variant)
    literals = {
        line.split("--from-literal=", 1)[1].split("=", 1)[0]
        for line in commands.splitlines()
        if "--from-literal=" in line
    }
    assert literals == keys
    assert (f"create secret generic {slug}-secrets" in commands) == bool(keys)
    assert ("per pod" in page) == variant.has("rate_limiter", "memory")
    assert ("init container" in page) == variant.named("has_db")


BACKUP_VARIANTS = [v for v in KUBERNETES_VARIANTS if v.named("has_backups")]


def test_some_kubernetes_variants_have_backups_and_some_not() -> None:
    databases = {v.resolved["database"] for v in BACKUP_VARIANTS}
    assert databases == {"sqlite", "postgresql"}
    assert len(BACKUP_VARIANTS) < len(KUBERNETES_VARIANTS)


@pytest.mark.parametrize("variant", BACKUP_VARIANTS, ids=[v.id for v in BACKUP_VARIANTS])
def test_backup_cronjob_follows_the_answers(variant: Variant, built: dict[str, Built]) -> None:
    """The CronJob of every overlay: one run at a time, bounded history, retries and time,
    the service's image and settings, `create` then `prune`, the bucket of the overlay with
    credentials by reference, SQLite's volume on its node, and its own NetworkPolicy."""
    slug = slug_of(built[variant.id])
    for overlay in OVERLAYS:
        documents = built[variant.id].documents(overlay)
        (cronjob,) = by_kind(documents, "CronJob")
        spec = cronjob["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["timeZone"] == "Etc/UTC"
        assert len(spec["schedule"].split()) == 5 and spec["schedule"].endswith(" * * *")
        assert 1 <= spec["successfulJobsHistoryLimit"] <= 5
        assert 1 <= spec["failedJobsHistoryLimit"] <= 5
        assert 0 < spec["startingDeadlineSeconds"] <= 86400
        job = spec["jobTemplate"]["spec"]
        assert 1 <= job["backoffLimit"] <= 5
        assert 0 < job["activeDeadlineSeconds"] <= spec["startingDeadlineSeconds"] + 3600
        pod = job["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["serviceAccountName"] == slug
        # Not selected by the Service, the autoscaler or the disruption budget.
        labels = job["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == f"{slug}-backup"
        assert labels != pod_labels(documents)

        containers = pod["initContainers"] + pod["containers"]
        assert [c["args"] for c in containers] == [["backup", "create"], ["backup", "prune"]]
        app = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        for container in containers:
            assert container["image"] == app["image"]
            assert container["envFrom"] == app["envFrom"]
            refs = {
                (item["valueFrom"]["secretKeyRef"]["name"], item["name"]): item["valueFrom"][
                    "secretKeyRef"
                ]
                for item in container["env"]
            }
            # What the settings cannot start without in production, and the bucket's
            # credentials; the encryption key only when the Secret has one.
            needed = expected_secret_keys(variant) & {
                "DATABASE_URL",
                "JWT_SECRET_KEY",
                "METRICS_TOKEN",
                "BACKUP_SIGNING_KEY",
            }
            assert set(refs) == {(f"{slug}-secrets", key) for key in needed} | {
                (f"{slug}-backup", key)
                for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BACKUP_ENCRYPTION_KEY")
            }
            assert [name for (_, name), ref in refs.items() if ref.get("optional")] == [
                "BACKUP_ENCRYPTION_KEY"
            ]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            if variant.has("database", "sqlite"):
                assert mounts["/app/data"] == "data"
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        if variant.has("database", "sqlite"):
            claim = one(documents, "PersistentVolumeClaim")["metadata"]["name"]
            assert volumes["data"]["persistentVolumeClaim"] == {"claimName": claim}
            (term,) = pod["affinity"]["podAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]
            assert term["topologyKey"] == "kubernetes.io/hostname"
            assert term["labelSelector"]["matchLabels"] == pod_labels(documents)
        else:
            assert "data" not in volumes and "affinity" not in pod

        env = settings(documents)
        assert env["BACKUP_TARGET"] == f"s3://{slug}-backups/{overlay}"
        assert env["BACKUP_S3_REGION"]

        (policy,) = [
            doc["spec"]
            for doc in by_kind(documents, "NetworkPolicy")
            if doc["metadata"]["name"] == f"{slug}-backup"
        ]
        assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": f"{slug}-backup"}
        assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy
        ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
        assert ports == {53, 443} | ({5432} if variant.has("database", "postgresql") else set())


@pytest.mark.parametrize("variant", BACKUP_VARIANTS, ids=[v.id for v in BACKUP_VARIANTS])
def test_docs_restore_patch_turns_the_cronjob_into_a_restore_job(
    variant: Variant, built: dict[str, Built], tmp_path: Path
) -> None:
    """The restore command of docs/kubernetes-backups.md patches a Job made from the CronJob
    (`kubectl create job --from` copies its jobTemplate): applied offline with `kubectl patch
    --local`, the Job runs `backup restore` alone, and with SQLite no longer waits for the
    service's pod."""
    docs = built[variant.id].project / "docs"
    page = (docs / "kubernetes-backups.md").read_text(encoding="utf-8")
    patch = page.split("--type=json -o json --patch '", 1)[1].split("'", 1)[0]
    documents = built[variant.id].documents("staging")
    (cronjob,) = by_kind(documents, "CronJob")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "restore", "namespace": cronjob["metadata"]["namespace"]},
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    result = subprocess.run(
        [tool("kubectl"), "patch", "--local", "-f", str(tmp_path / "job.json"),
         "--type=json", "-o", "json", "--patch", patch],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pod = json.loads(result.stdout)["spec"]["template"]["spec"]
    assert "initContainers" not in pod and "affinity" not in pod
    assert [c["args"] for c in pod["containers"]] == [["backup", "restore", "NAME", "--yes"]]
    assert restricted_violations(pod) == []
