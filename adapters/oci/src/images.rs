//! Garbage collection of container images: which images the EN's container drivers used,
//! newest last per repository, and the deletion of those beyond the newest few that no
//! container uses. The history is kept in a JSON file so that it outlives the EN process.

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveImageOptionsBuilder};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

pub use eos_domain::state::repository_of;

/// The images used per repository, oldest first, shared by the `oci` and `compose` drivers of
/// one engine.
#[derive(Default)]
pub struct ImageHistory {
    /// Where the history is kept; `None` keeps it in memory only.
    path: Option<PathBuf>,
    used: Mutex<BTreeMap<String, Vec<String>>>,
}

impl ImageHistory {
    /// A history kept in the file at `path` (read now when it exists).
    pub fn load(path: PathBuf) -> Self {
        let used = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            path: Some(path),
            used: Mutex::new(used),
        }
    }

    /// Records that a component was just applied with `image`: it becomes its repository's
    /// newest.
    pub fn used(&self, image: &str) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let list = used.entry(repository_of(image).to_owned()).or_default();
        list.retain(|i| i != image);
        list.push(image.to_owned());
        self.save(&used);
    }

    fn save(&self, used: &BTreeMap<String, Vec<String>>) {
        let Some(path) = &self.path else { return };
        let json = serde_json::to_vec_pretty(used).expect("a map of strings serializes");
        let tmp = path.with_extension("json.tmp");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the image history");
        }
    }

    /// Deletes from the engine the images of each repository beyond its newest `keep` (at
    /// least one), except those a container (of EOS or not) was created from. Returns the
    /// references deleted.
    pub async fn collect(&self, docker: &Docker, keep: usize) -> Result<Vec<String>, String> {
        let keep = keep.max(1);
        let candidates: Vec<String> = {
            let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            used.values()
                .flat_map(|list| list[..list.len().saturating_sub(keep)].iter().cloned())
                .collect()
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let containers = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default().all(true).build(),
            ))
            .await
            .map_err(|e| crate::engine_message(&e))?;
        let in_use: HashSet<String> = containers
            .iter()
            .flat_map(|c| [c.image.clone(), c.image_id.clone()])
            .flatten()
            .collect();
        let mut deleted = Vec::new();
        let mut gone = Vec::new();
        for image in candidates {
            let id = match docker.inspect_image(&image).await {
                Ok(found) => found.id.unwrap_or_default(),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    gone.push(image);
                    continue;
                }
                Err(e) => return Err(crate::engine_message(&e)),
            };
            if in_use.contains(&image) || in_use.contains(&id) {
                continue;
            }
            let options = RemoveImageOptionsBuilder::default().build();
            match docker.remove_image(&image, Some(options), None).await {
                Ok(_) => {
                    deleted.push(image.clone());
                    gone.push(image);
                }
                // Created from by a container made since the listing: kept.
                Err(e) => {
                    tracing::debug!(image = %image, error = %crate::engine_message(&e), "image kept")
                }
            }
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        for list in used.values_mut() {
            list.retain(|i| !gone.contains(i));
        }
        used.retain(|_, list| !list.is_empty());
        self.save(&used);
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_last_and_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("images.json");
        let history = ImageHistory::load(path.clone());
        for image in ["r/a:1", "r/a:2", "r/b:1", "r/a:1"] {
            history.used(image);
        }
        let again = ImageHistory::load(path);
        let used = again.used.lock().unwrap();
        assert_eq!(used["r/a"], ["r/a:2", "r/a:1"], "re-used moves to newest");
        assert_eq!(used["r/b"], ["r/b:1"]);
    }
}
