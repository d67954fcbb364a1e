use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::container::HealthConfig;
use super::lenient;

/// `GET /images/{name}/json`, the fields berth reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    #[serde(alias = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub repo_digests: Vec<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub config: Option<ImageConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub cmd: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub env: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub healthcheck: Option<HealthConfig>,
}

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    #[serde(alias = "id")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub repo_digests: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub created: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    pub size: Option<i64>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub labels: BTreeMap<String, String>,
}

/// One line of pull, import or load progress. A failure arrives as a line
/// with `errorDetail` (and the legacy `error`) inside a `200` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageProgress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(rename = "progressDetail", default, skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    /// `docker load` reports what it loaded as a `stream` line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(rename = "errorDetail", default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImageProgress {
    /// The failure this line reports, if it reports one.
    pub fn failure(&self) -> Option<(String, Option<i64>)> {
        match (&self.error_detail, &self.error) {
            (Some(d), _) if !d.message.is_empty() => Some((d.message.clone(), d.code)),
            (_, Some(e)) => Some((e.clone(), self.error_detail.as_ref().and_then(|d| d.code))),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProgressDetail {
    #[serde(default, deserialize_with = "lenient::opt_i64", skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64", skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default, deserialize_with = "lenient::opt_i64", skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: String,
}

/// One entry of the answer to `DELETE /images/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageDeleted {
    #[serde(default)]
    pub untagged: Option<String>,
    #[serde(default)]
    pub deleted: Option<String>,
}
