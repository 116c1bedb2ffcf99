//! The workload security policy for the pods a chart makes: every field of a rendered object
//! (a Pod's `spec`, a Deployment's `spec.template.spec`, a CronJob's job template, a custom
//! resource embedding pods or single containers anywhere) is judged as a container is. Refused: host network, PID or
//! IPC namespaces; privileged containers, added capabilities, privilege escalation asked for,
//! unmasked `/proc`, unconfined seccomp or AppArmor profiles, SELinux types, sysctls;
//! `hostPath` volumes outside the folders the policy grants. Without the `clusterScoped`
//! grant also: objects in another namespace than the release's, API rights (RBAC objects),
//! service-account token Secrets, and claims binding a volume by name; and Services with
//! `externalIPs` always. Pure: the driver calls it on the rendered objects before applying
//! any.

use eos_domain::workload::WorkloadPolicy;
use serde_json::Value;

/// Why `object` (a rendered manifest) may not be applied under `policy` in `namespace`, or
/// `None`.
pub fn refusal(object: &Value, policy: &WorkloadPolicy, namespace: &str) -> Option<String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let what = format!("{kind}/{name}");
    if let Some(other) = object["metadata"]["namespace"].as_str()
        && other != namespace
        && !policy.cluster_scoped
    {
        return Some(format!(
            "{what} names namespace {other}, not the release's ({namespace}), and the workload \
             security policy keeps a chart in its own"
        ));
    }
    if !policy.cluster_scoped {
        // Rights granted inside the namespace would let an ordinary pod create what the
        // render-time check refuses, through the API server, after it.
        if object["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("rbac.authorization.k8s.io/"))
        {
            return Some(format!(
                "{what}: the workload security policy lets a chart grant no API rights \
                 (Roles and RoleBindings need the clusterScoped grant)"
            ));
        }
        if kind == "Secret" && object["type"] == "kubernetes.io/service-account-token" {
            return Some(format!(
                "{what}: the workload security policy lets a chart mint no service-account \
                 tokens"
            ));
        }
        if kind == "PersistentVolumeClaim" && object["spec"]["volumeName"].is_string() {
            return Some(format!(
                "{what}: spec.volumeName binds a volume the chart did not make, which the \
                 workload security policy allows only with the clusterScoped grant"
            ));
        }
    }
    if kind == "Service"
        && object["spec"]["externalIPs"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    {
        return Some(format!(
            "{what}: spec.externalIPs would take traffic for addresses of others"
        ));
    }
    walk(object, "", policy).map(|why| format!("{what}: {why}"))
}

/// The first way out of the container anywhere in `value` (a pod spec where a workload kind
/// holds it, or any field of a custom resource that embeds containers or volumes), with the
/// path to it: host namespaces asked for, a `hostPath` outside the grants, or a
/// `securityContext` that takes the confinement away.
fn walk(value: &Value, at: &str, policy: &WorkloadPolicy) -> Option<String> {
    let refused = "the workload security policy allows";
    match value {
        Value::Object(map) => {
            for host in ["hostNetwork", "hostPID", "hostIPC"] {
                if map.get(host).and_then(Value::as_bool) == Some(true) {
                    return Some(format!("{at}{host}: {refused} no host namespaces"));
                }
            }
            if let Some(path) = map
                .get("hostPath")
                .and_then(|h| h.get("path"))
                .and_then(Value::as_str)
                && let Err(why) = policy.allows_host_path(path, &[])
            {
                return Some(format!("{at}hostPath: {why}"));
            }
            if let Some(context) = map.get("securityContext")
                && let Some(why) = security_refusal(context)
            {
                return Some(format!("{at}securityContext.{why}"));
            }
            map.iter()
                .find_map(|(key, inner)| walk(inner, &format!("{at}{key}."), policy))
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(i, inner)| {
            walk(
                inner,
                &format!("{}[{i}].", at.trim_end_matches('.')),
                policy,
            )
        }),
        _ => None,
    }
}

/// What a pod's or a container's `securityContext` asks that takes the confinement away.
fn security_refusal(context: &Value) -> Option<String> {
    let refused = "the workload security policy allows";
    if context["privileged"].as_bool() == Some(true) {
        return Some(format!("privileged: {refused} no privileged containers"));
    }
    if context["allowPrivilegeEscalation"].as_bool() == Some(true) {
        return Some(format!(
            "allowPrivilegeEscalation: {refused} no privilege escalation"
        ));
    }
    if context["capabilities"]["add"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        return Some(format!("capabilities.add: {refused} no added capabilities"));
    }
    if context["procMount"]
        .as_str()
        .is_some_and(|m| m != "Default")
    {
        return Some(format!("procMount: {refused} only the default"));
    }
    for profile in ["seccompProfile", "appArmorProfile"] {
        if context[profile]["type"] == "Unconfined" {
            return Some(format!("{profile}: {refused} no unconfined profile"));
        }
    }
    if context["seLinuxOptions"]["type"].is_string() {
        return Some(format!(
            "seLinuxOptions.type: {refused} no SELinux type of its own"
        ));
    }
    if context["sysctls"].as_array().is_some_and(|a| !a.is_empty()) {
        return Some(format!("sysctls: {refused} no sysctls"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(pod: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "edge-apps"},
               "spec": {"template": {"spec": pod}}})
    }

    fn strict() -> WorkloadPolicy {
        WorkloadPolicy::strict()
    }

    #[test]
    fn an_ordinary_pod_passes() {
        let pod = json!({"containers": [{"name": "web", "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "data", "emptyDir": {}}]});
        assert_eq!(refusal(&deployment(pod), &strict(), "edge-apps"), None);
    }

    #[test]
    fn each_way_out_of_the_container_is_refused_naming_the_field() {
        let cases = [
            (
                json!({"hostNetwork": true, "containers": []}),
                "hostNetwork",
            ),
            (json!({"hostPID": true, "containers": []}), "hostPID"),
            (json!({"hostIPC": true, "containers": []}), "hostIPC"),
            (
                json!({"containers": [], "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
                "volumes[0].hostPath",
            ),
            (
                json!({"containers": [{"name": "a", "securityContext": {"privileged": true}}]}),
                "containers[0].securityContext.privileged",
            ),
            (
                json!({"containers": [], "initContainers": [{"name": "a", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
                "initContainers[0].securityContext.capabilities.add",
            ),
            (
                json!({"containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": true}}]}),
                "allowPrivilegeEscalation",
            ),
            (
                json!({"containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}]}),
                "procMount",
            ),
        ];
        for (pod, field) in cases {
            let why = refusal(&deployment(pod.clone()), &strict(), "edge-apps")
                .unwrap_or_else(|| panic!("{pod} passed"));
            assert!(why.contains(field), "{why}");
            assert!(
                why.starts_with("Deployment/web: spec.template.spec."),
                "{why}"
            );
        }
    }

    #[test]
    fn confinement_and_api_rights_stay_as_they_are() {
        let cases = [
            (
                deployment(
                    json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": []}),
                ),
                "securityContext.seccompProfile",
            ),
            (
                deployment(
                    json!({"containers": [{"name": "a", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]}),
                ),
                "containers[0].securityContext.appArmorProfile",
            ),
            (
                deployment(
                    json!({"containers": [{"name": "a", "securityContext": {"seLinuxOptions": {"type": "spc_t"}}}]}),
                ),
                "seLinuxOptions",
            ),
            (
                deployment(
                    json!({"securityContext": {"sysctls": [{"name": "kernel.x", "value": "1"}]}, "containers": []}),
                ),
                "sysctls",
            ),
            (
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}}),
                "API rights",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "t"}}),
                "service-account",
            ),
            (
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {"volumeName": "pv-of-others"}}),
                "volumeName",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"externalIPs": ["10.0.0.1"]}}),
                "externalIPs",
            ),
        ];
        for (object, field) in cases {
            let why = refusal(&object, &strict(), "edge-apps")
                .unwrap_or_else(|| panic!("{object} passed"));
            assert!(why.contains(field), "{why}");
        }
    }

    #[test]
    fn pods_are_found_wherever_an_object_holds_them() {
        let bad = json!({"containers": [{"name": "a", "securityContext": {"privileged": true}}]});
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": bad});
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": bad}}}}});
        let custom = json!({"apiVersion": "x.io/v1", "kind": "Runner", "metadata": {"name": "r"},
            "spec": {"workers": [{"pod": bad}]}});
        // A workflow template holding one container, and a volume of the host, not a pod.
        let workflow = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
            "metadata": {"name": "w"},
            "spec": {"templates": [{"name": "t", "container": {"image": "x",
                "securityContext": {"privileged": true}}}]}});
        let volume = json!({"apiVersion": "x.io/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}});
        for object in [pod, cron, custom, workflow, volume] {
            assert!(
                refusal(&object, &strict(), "edge-apps").is_some(),
                "{object}"
            );
        }
    }

    #[test]
    fn a_granted_host_folder_is_mounted_and_nothing_beyond_it() {
        let granted = WorkloadPolicy {
            host_paths: vec!["/srv/data".into()],
            cluster_scoped: false,
            ..Default::default()
        };
        let pod = |path: &str| {
            deployment(json!({"containers": [],
                "volumes": [{"name": "d", "hostPath": {"path": path}}]}))
        };
        assert_eq!(refusal(&pod("/srv/data/cam"), &granted, "edge-apps"), None);
        assert!(refusal(&pod("/srv"), &granted, "edge-apps").is_some());
        assert!(refusal(&pod("/var/run/docker.sock"), &granted, "edge-apps").is_some());
    }

    #[test]
    fn another_namespace_needs_the_cluster_scope_grant() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "kube-system"}});
        let why = refusal(&object, &strict(), "edge-apps").unwrap();
        assert!(why.contains("names namespace kube-system"), "{why}");
        let wide = WorkloadPolicy {
            host_paths: vec![],
            cluster_scoped: true,
            ..Default::default()
        };
        assert_eq!(refusal(&object, &wide, "edge-apps"), None);
    }
}
