"""What deploy/kubernetes/check asserts beyond checkov's own checks.

Usage: rules.py --checkov <checkov JSON report> --max-skips N <manifest directory>

Reads checkov's report (no failed check, no parsing error, at most N skips, each with a reason)
and the manifests themselves: two or more replicas on the Redis store, probes on /healthz and
/readyz at the admin listener's port, trusted_proxy_hops = 1, every secret a *_file under the
Secret's mount and none in an environment variable or in the ConfigMap. Prints one line per
rule; exits 1 when any fails. Runs in checkov's virtualenv (PyYAML comes with it).
"""

import argparse
import json
import pathlib
import sys
import tomllib

import yaml

# The secrets Ward reads, by section, and the key of their file form.
SECRETS = {
    "oidc": ("client_secret", "client_secret_file"),
    "crypto": ("keys", "keys_file"),
    "store": ("url", "url_file"),
    "admin": ("token", "token_file"),
}

failures = []


def rule(ok, text):
    print(("ok    " if ok else "FAIL  ") + text)
    if not ok:
        failures.append(text)


def checkov_summary(path, max_skips):
    report = json.loads(pathlib.Path(path).read_text() or "{}")
    reports = report if isinstance(report, list) else [report]
    summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    skipped = []
    for one in reports:
        for key in summary:
            summary[key] += one.get("summary", {}).get(key, 0)
        skipped += one.get("results", {}).get("skipped_checks", [])
    print(
        "checkov: passed {passed}, failed {failed}, skipped {skipped}, "
        "parsing errors {parsing_errors}".format(**summary)
    )
    rule(summary["passed"] > 0, "checkov ran its checks")
    rule(summary["failed"] == 0, "checkov: no failed check")
    rule(summary["parsing_errors"] == 0, "checkov: every manifest parsed")
    rule(summary["skipped"] <= max_skips, f"checkov: at most {max_skips} skips")
    for skip in skipped:
        reason = (skip.get("check_result") or {}).get("suppress_comment") or ""
        rule(len(reason) >= 20, f"skip {skip['check_id']} has its reason: {reason}")


def load_manifests(directory):
    docs = {}
    for path in sorted(pathlib.Path(directory).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and "metadata" in doc:
                docs[doc["kind"]] = doc
    return docs


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def check_deployment(docs, config):
    spec = docs["Deployment"]["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    rule(spec.get("replicas", 1) >= 2, "two or more replicas")
    rule(config["store"]["kind"] == "redis", "the replicas share the Redis store")
    rule(config["server"].get("trusted_proxy_hops") == 1, "trusted_proxy_hops = 1 (the ingress)")
    envs = container.get("env", []) + container.get("envFrom", [])
    rule(
        "secret" not in json.dumps(envs).lower(),
        "no secret in an environment variable",
    )
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    admin = port_of(config["admin"]["listen"])
    rule(ports.get("admin") == admin, f"the admin port is [admin] listen's ({admin})")
    rule(ports.get("http") == port_of(config["server"]["listen"]), "the http port is listen's")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        rule(get.get("path") == path and get.get("port") == "admin", f"{probe} on {path}")
    context = container["securityContext"]
    rule(
        context.get("readOnlyRootFilesystem") is True
        and context.get("allowPrivilegeEscalation") is False
        and context.get("runAsNonRoot") is True
        and context.get("capabilities", {}).get("drop") == ["ALL"]
        and context.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "securityContext: non-root, read-only root, no escalation, no capabilities, seccomp",
    )
    return pod, container


def check_secrets(docs, config, pod, container):
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in secret_volumes]
    for section, (key, file_key) in SECRETS.items():
        values = config.get(section, {})
        rule(key not in values, f"[{section}] {key} is not in the ConfigMap")
        path = values.get(file_key, "")
        rule(
            any(path.startswith(m + "/") for m in mounts),
            f"[{section}] {file_key} = {path!r} is a file of the mounted Secret",
        )


def check_policies(docs):
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    policy = docs["NetworkPolicy"]["spec"]
    rule(policy["podSelector"]["matchLabels"].items() <= labels.items(), "NetworkPolicy selects Ward")
    rule(sorted(policy["policyTypes"]) == ["Egress", "Ingress"], "NetworkPolicy: ingress and egress")
    sources = [peer for entry in policy["ingress"] for peer in entry["from"]]
    rule(
        all("namespaceSelector" in p and "podSelector" in p for p in sources),
        "NetworkPolicy: ingress from the ingress controller's pods only",
    )
    budget = docs["PodDisruptionBudget"]["spec"]
    rule(budget["selector"]["matchLabels"].items() <= labels.items(), "PodDisruptionBudget selects Ward")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkov", required=True)
    parser.add_argument("--max-skips", type=int, default=3)
    parser.add_argument("directory")
    args = parser.parse_args()
    checkov_summary(args.checkov, args.max_skips)
    docs = load_manifests(args.directory)
    config = tomllib.loads(docs["ConfigMap"]["data"]["ward.toml"])
    pod, container = check_deployment(docs, config)
    check_secrets(docs, config, pod, container)
    check_policies(docs)
    if failures:
        print(f"{len(failures)} rule(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
