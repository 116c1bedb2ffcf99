//! Questions from the CO for an EN of this site (how a deployment's components are doing now),
//! passed on to the EN and answered back; nothing is queued when the EN cannot be reached.

use crate::site::Site;
use eos_adapter_grpc::pb::{self, lo_command};
use eos_domain::ids::DeviceId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the LO waits for an EN's answer (the CO waits a little longer for the LO's).
const EN_TIMEOUT: Duration = Duration::from_secs(8);

/// Inspections passed on to ENs and not yet answered, by the EN asked and the command's op id:
/// only that EN can answer one.
#[derive(Default)]
pub struct Inspections {
    waiting: Mutex<HashMap<(DeviceId, u64), oneshot::Sender<pb::InspectAnswer>>>,
}

impl Inspections {
    /// Asks the EN named in `question` and returns its answer, carrying the CO's request id;
    /// an answer with `error` set when the EN is offline, unknown here or silent.
    pub async fn ask(&self, site: &Site, question: pb::Inspect) -> pb::InspectAnswer {
        let request_id = question.request_id;
        let failed = |error: String| pb::InspectAnswer {
            request_id,
            error,
            components: Vec::new(),
        };
        let device = match DeviceId::parse(&question.device_id) {
            Ok(d) if d.site() == &site.id => d,
            Ok(d) => return failed(format!("device {d} is not of site {}", site.id)),
            Err(e) => return failed(e.to_string()),
        };
        let Some(commands) = site.node_commands(&device) else {
            return failed(format!("EN {device} is offline"));
        };
        let op_id = site.next_op();
        let (tx, rx) = oneshot::channel();
        self.lock().insert((device.clone(), op_id), tx);
        let command = pb::LoCommand {
            op_id,
            body: Some(lo_command::Body::Inspect(question)),
        };
        let answer = if commands.send(Ok(command)).await.is_err() {
            Err(format!("EN {device} went away before it was asked"))
        } else {
            match tokio::time::timeout(EN_TIMEOUT, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(format!("EN {device} went away before it answered")),
                Err(_) => Err(format!(
                    "EN {device} did not answer within {} s",
                    EN_TIMEOUT.as_secs()
                )),
            }
        };
        self.lock().remove(&(device.clone(), op_id));
        match answer {
            Ok(answer) => pb::InspectAnswer {
                request_id,
                ..answer
            },
            Err(error) => failed(error),
        }
    }

    /// Hands the answer of EN `device` (its `request_id` is the command's op id) to whoever
    /// asked that EN; an answer to a question put to another EN is dropped.
    pub fn answered(&self, device: &DeviceId, answer: pb::InspectAnswer) {
        if let Some(tx) = self.lock().remove(&(device.clone(), answer.request_id)) {
            let _ = tx.send(answer);
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(DeviceId, u64), oneshot::Sender<pb::InspectAnswer>>>
    {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another EN of the site, answering with the op id of a question put to its neighbour,
    /// answers nothing; the EN asked does.
    #[test]
    fn only_the_en_asked_answers() {
        let inspections = Inspections::default();
        let (asked, other) = (
            DeviceId::parse("s/n1").unwrap(),
            DeviceId::parse("s/n2").unwrap(),
        );
        let (tx, mut rx) = oneshot::channel();
        inspections.lock().insert((asked.clone(), 7), tx);
        let answer = |error: &str| pb::InspectAnswer {
            request_id: 7,
            error: error.into(),
            components: Vec::new(),
        };
        inspections.answered(&other, answer("forged by n2"));
        assert!(rx.try_recv().is_err(), "a forged answer got through");
        inspections.answered(&asked, answer("from n1"));
        assert_eq!(rx.try_recv().unwrap().error, "from n1");
    }
}
