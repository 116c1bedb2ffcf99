//! Live questions to the devices running a deployment: resource use and log tails, asked
//! through the sites' links and never stored.

use super::super::records::{DeviceLive, DeviceStatusRecord, LiveQuery};
use super::super::{ServiceError, not_found};
use super::ControlPlane;
use crate::ids::DeviceId;
use crate::margo::status::DeploymentState;

/// The most log lines one question to a device may ask for, per component.
pub const MAX_LOG_LINES: u32 = 1000;

impl ControlPlane {
    /// How a deployment's components are doing now, asked of every device that runs it
    /// (through their sites' LOs): resource use and the last `lines` log lines of `component`,
    /// or of all components. A device that cannot be asked says why in its entry.
    pub async fn live(
        &self,
        tenant: &crate::ids::TenantId,
        id: &str,
        component: Option<&str>,
        lines: u32,
    ) -> Result<Vec<DeviceLive>, ServiceError> {
        if lines > MAX_LOG_LINES {
            let mut problems = crate::Problems::default();
            problems.push(
                "lines",
                format!("{lines} is more than the {MAX_LOG_LINES} lines a device sends"),
            );
            return Err(ServiceError::Invalid {
                what: "question for the devices".into(),
                problems,
            });
        }
        let view = self.deployment_view(tenant, id).await?;
        let running: Vec<&DeviceStatusRecord> = view
            .devices
            .iter()
            .filter(|d| d.state != DeploymentState::Removed)
            .collect();
        if let Some(name) = component
            && !running
                .iter()
                .any(|d| d.components.iter().any(|c| c.name == name))
        {
            return Err(not_found("component", format!("{id}/{name}")));
        }
        let mut out = Vec::new();
        for status in running {
            // A site-wide entry (`SITE/*`: no device could take it) has no device to ask.
            let Ok(device) = DeviceId::parse(&status.device_id) else {
                continue;
            };
            let query = LiveQuery {
                device,
                deployment: view.deployment.id.clone(),
                component: component.map(str::to_owned),
                lines,
            };
            let (components, error) = match self.notifier.inspect(&query).await {
                Ok(components) => (components, None),
                Err(why) => (Vec::new(), Some(why)),
            };
            out.push(DeviceLive {
                device_id: status.device_id.clone(),
                components,
                error,
            });
        }
        Ok(out)
    }
}
