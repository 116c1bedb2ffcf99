//! The diff between actual and desired workloads of a device, as operations (seed 003):
//! add app, remove app, add / update / remove / replace component; none means noop.

use crate::ids::DeploymentId;
use crate::state::{AppInstance, ComponentSpec, DeviceWorkloads};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    AddApp {
        deployment: DeploymentId,
        app: AppInstance,
    },
    RemoveApp {
        deployment: DeploymentId,
        app: AppInstance,
    },
    /// `position` is the component's index in the desired install order.
    AddComponent {
        deployment: DeploymentId,
        position: usize,
        component: ComponentSpec,
    },
    UpdateComponent {
        deployment: DeploymentId,
        position: usize,
        from: ComponentSpec,
        to: ComponentSpec,
    },
    RemoveComponent {
        deployment: DeploymentId,
        component: ComponentSpec,
    },
    /// Same name, different runtime: remove the old one, then add the new one.
    ReplaceComponent {
        deployment: DeploymentId,
        position: usize,
        from: ComponentSpec,
        to: ComponentSpec,
    },
}

impl Operation {
    pub fn deployment(&self) -> &DeploymentId {
        match self {
            Self::AddApp { deployment, .. }
            | Self::RemoveApp { deployment, .. }
            | Self::AddComponent { deployment, .. }
            | Self::UpdateComponent { deployment, .. }
            | Self::RemoveComponent { deployment, .. }
            | Self::ReplaceComponent { deployment, .. } => deployment,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::AddApp { .. } => "add-app",
            Self::RemoveApp { .. } => "remove-app",
            Self::AddComponent { .. } => "add-component",
            Self::UpdateComponent { .. } => "update-component",
            Self::RemoveComponent { .. } => "remove-component",
            Self::ReplaceComponent { .. } => "replace-component",
        }
    }
}

/// Operations that turn `actual` into `desired`; empty means noop.
pub fn diff(actual: &DeviceWorkloads, desired: &DeviceWorkloads) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (id, app) in actual {
        if !desired.contains_key(id) {
            ops.push(Operation::RemoveApp {
                deployment: id.clone(),
                app: app.clone(),
            });
        }
    }
    for (id, want) in desired {
        match actual.get(id) {
            None => ops.push(Operation::AddApp {
                deployment: id.clone(),
                app: want.clone(),
            }),
            Some(have) if needs_replacement(have, want) => {
                ops.push(Operation::RemoveApp {
                    deployment: id.clone(),
                    app: have.clone(),
                });
                ops.push(Operation::AddApp {
                    deployment: id.clone(),
                    app: want.clone(),
                });
            }
            Some(have) => diff_components(id, have, want, &mut ops),
        }
    }
    ops
}

/// A different application, or the kept components in another order, replaces the whole app.
fn needs_replacement(have: &AppInstance, want: &AppInstance) -> bool {
    let kept_have: Vec<&str> = have
        .components
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| want.component(n).is_some())
        .collect();
    let kept_want: Vec<&str> = want
        .components
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| have.component(n).is_some())
        .collect();
    have.app_id != want.app_id || kept_have != kept_want
}

fn diff_components(
    id: &DeploymentId,
    have: &AppInstance,
    want: &AppInstance,
    ops: &mut Vec<Operation>,
) {
    for c in &have.components {
        if want.component(&c.name).is_none() {
            ops.push(Operation::RemoveComponent {
                deployment: id.clone(),
                component: c.clone(),
            });
        }
    }
    for (position, to) in want.components.iter().enumerate() {
        let deployment = id.clone();
        match have.component(&to.name) {
            None => ops.push(Operation::AddComponent {
                deployment,
                position,
                component: to.clone(),
            }),
            Some(from) if from == to => {}
            Some(from) if from.runtime != to.runtime => ops.push(Operation::ReplaceComponent {
                deployment,
                position,
                from: from.clone(),
                to: to.clone(),
            }),
            Some(from) => ops.push(Operation::UpdateComponent {
                deployment,
                position,
                from: from.clone(),
                to: to.clone(),
            }),
        }
    }
}

/// Applies operations to a state, as confirmed results would: the model the reconciler relies on.
pub fn apply(state: &mut DeviceWorkloads, ops: &[Operation]) {
    for op in ops {
        match op {
            Operation::AddApp { deployment, app } => {
                state.insert(deployment.clone(), app.clone());
            }
            Operation::RemoveApp { deployment, .. } => {
                state.remove(deployment);
            }
            Operation::RemoveComponent {
                deployment,
                component,
            } => {
                if let Some(app) = state.get_mut(deployment) {
                    app.components.retain(|c| c.name != component.name);
                }
            }
            Operation::AddComponent {
                deployment,
                position,
                component: to,
            }
            | Operation::UpdateComponent {
                deployment,
                position,
                to,
                ..
            }
            | Operation::ReplaceComponent {
                deployment,
                position,
                to,
                ..
            } => {
                if let Some(app) = state.get_mut(deployment) {
                    place_component(app, *position, to.clone());
                }
            }
        }
    }
}

/// Puts a component at its install position, replacing one of the same name.
pub fn place_component(app: &mut AppInstance, position: usize, component: ComponentSpec) {
    app.components.retain(|c| c.name != component.name);
    let at = position.min(app.components.len());
    app.components.insert(at, component);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(name: &str, runtime: &str, rev: &str) -> ComponentSpec {
        ComponentSpec {
            name: name.into(),
            runtime: runtime.into(),
            repository: format!("oci://r/{name}"),
            revision: rev.into(),
            app_version: "1.0.0".into(),
            parameters: Default::default(),
            settings: Default::default(),
            signatures: None,
            workload: None,
        }
    }

    fn dep(n: u8) -> DeploymentId {
        DeploymentId::parse(format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
    }

    fn arb_component() -> impl Strategy<Value = ComponentSpec> {
        (
            prop::sample::select(vec!["a", "b", "c", "d"]),
            prop::sample::select(vec!["wasm", "oci"]),
            prop::sample::select(vec!["1.0.0", "1.1.0"]),
        )
            .prop_map(|(n, r, v)| spec(n, r, v))
    }

    fn arb_app() -> impl Strategy<Value = AppInstance> {
        (
            prop::sample::select(vec!["app-x", "app-y"]),
            prop::collection::vec(arb_component(), 1..4),
        )
            .prop_map(|(app, comps)| {
                let mut seen = std::collections::BTreeSet::new();
                let components = comps
                    .into_iter()
                    .filter(|c| seen.insert(c.name.clone()))
                    .collect();
                AppInstance {
                    app_id: app.into(),
                    components,
                }
            })
    }

    fn arb_workloads() -> impl Strategy<Value = DeviceWorkloads> {
        prop::collection::btree_map((0u8..4).prop_map(dep), arb_app(), 0..4)
    }

    proptest! {
        #[test]
        fn diff_of_a_state_with_itself_is_noop(s in arb_workloads()) {
            prop_assert!(diff(&s, &s).is_empty());
        }

        #[test]
        fn applying_the_diff_yields_the_desired_state(actual in arb_workloads(), desired in arb_workloads()) {
            let ops = diff(&actual, &desired);
            let mut state = actual.clone();
            apply(&mut state, &ops);
            prop_assert_eq!(state, desired);
        }
    }

    #[test]
    fn each_kind_of_change_yields_its_operation() {
        let app = |cs: Vec<ComponentSpec>| AppInstance {
            app_id: "app".into(),
            components: cs,
        };
        let actual = DeviceWorkloads::from([
            (
                dep(1),
                app(vec![
                    spec("a", "wasm", "1.0.0"),
                    spec("b", "wasm", "1.0.0"),
                    spec("c", "wasm", "1.0.0"),
                ]),
            ),
            (dep(2), app(vec![spec("a", "wasm", "1.0.0")])),
        ]);
        let desired = DeviceWorkloads::from([
            (
                dep(1),
                app(vec![
                    spec("a", "wasm", "1.1.0"),
                    spec("b", "oci", "1.0.0"),
                    spec("d", "wasm", "1.0.0"),
                ]),
            ),
            (dep(3), app(vec![spec("a", "wasm", "1.0.0")])),
        ]);
        let kinds: Vec<&str> = diff(&actual, &desired)
            .iter()
            .map(Operation::kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "remove-app",
                "remove-component",
                "update-component",
                "replace-component",
                "add-component",
                "add-app"
            ]
        );
    }
}
