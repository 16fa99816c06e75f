//! The analyze API: `POST /api/analyze-prs` accepts an analysis and queues it,
//! `GET /api/analyses/{id}` returns it to its owner.

use std::sync::Arc;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::analysis_view::AnalysisView;
use super::idempotency::{self, IdempotencyKeys};
use super::routing::{dispatch, request_span, segments, Route};
use super::{body, identity, ApiError};
use crate::access::{
    AnalysisQuota, ConnectionOwnership, KeyReservation, OwnershipError, QuotaDecision,
};
use crate::config::ApiConfig;
use crate::domain::{
    Analysis, AnalysisError, AnalysisId, ConnectionId, FailureCode, RepositoryName,
};
use crate::queue::AnalysisQueue;
use crate::store::{AnalysisStore, StoreError};
use tracing::Instrument;

/// Fields `POST /api/analyze-prs` accepts.
const ANALYZE_FIELDS: [&str; 2] = ["connectionId", "repo"];

enum Endpoint {
    Analyze,
    GetAnalysis(String),
}

/// The analyze API function's state, built once per cold start.
#[derive(Clone)]
pub struct AnalysesApi {
    store: Arc<dyn AnalysisStore>,
    queue: Arc<dyn AnalysisQueue>,
    ownership: ConnectionOwnership,
    quota: AnalysisQuota,
    idempotency: IdempotencyKeys,
    config: ApiConfig,
}

impl AnalysesApi {
    pub fn new(
        store: Arc<dyn AnalysisStore>,
        queue: Arc<dyn AnalysisQueue>,
        ownership: ConnectionOwnership,
        quota: AnalysisQuota,
        config: ApiConfig,
    ) -> Self {
        let idempotency = IdempotencyKeys::new(quota.store());
        Self {
            store,
            queue,
            ownership,
            quota,
            idempotency,
            config,
        }
    }

    /// Handles one API Gateway request.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let span = request_span(&request);
        let route = route(request.method(), request.uri().path());
        dispatch(
            &request,
            &self.config.allowed_origins,
            route,
            |endpoint| async {
                match endpoint {
                    Endpoint::Analyze => self.analyze(&request).await,
                    Endpoint::GetAnalysis(id) => self.get_analysis(&request, &id).await,
                }
            },
        )
        .instrument(span)
        .await
    }

    async fn analyze(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let owner = identity::caller(request, self.config.auth_mode)?;
        let object = body::json_object(request)?;
        let (connection_id, repository) = parse_analyze_fields(&object)?;
        let key = idempotency::key(request)?;

        let analysis = Analysis::new(owner, repository, connection_id, OffsetDateTime::now_utc());
        let Some(key) = key else {
            return self.accept(&analysis).await;
        };

        let fingerprint = idempotency::fingerprint(&analysis);
        match self
            .idempotency
            .reserve(&analysis, &key, &fingerprint)
            .await?
        {
            KeyReservation::Reserved => {}
            KeyReservation::Used(earlier) if earlier.fingerprint == fingerprint => {
                return self.replay(&analysis, &earlier.analysis_id).await;
            }
            KeyReservation::Used(_) => return Err(ApiError::IdempotencyKeyReused),
        }

        let accepted = self.accept(&analysis).await;
        if accepted.is_err() {
            self.idempotency.release(&analysis.owner, &key).await;
        }
        accepted
    }

    /// Responds to a repeated request with the analysis its key first created.
    async fn replay(
        &self,
        analysis: &Analysis,
        earlier_id: &str,
    ) -> Result<Response<Body>, ApiError> {
        let stored = match AnalysisId::parse(earlier_id) {
            Some(id) => self.store.get(&id).await.map_err(|error| {
                tracing::error!(%error, "reading the analysis of an idempotency key failed");
                storage_unavailable()
            })?,
            None => None,
        };
        // The first request may still be running, or may have failed before storing it.
        let Some(stored) = stored.filter(|stored| stored.owner == analysis.owner) else {
            return Err(ApiError::IdempotencyKeyInUse);
        };
        tracing::info!(analysis_id = %stored.id, "repeated request returned its earlier analysis");
        Ok(accepted_response(StatusCode::OK, &stored))
    }

    /// Checks the caller's right to the connection and quota, stores the analysis and queues it.
    async fn accept(&self, analysis: &Analysis) -> Result<Response<Body>, ApiError> {
        self.ownership
            .verify(&analysis.owner, &analysis.connection_id)
            .await
            .map_err(|error| match error {
                OwnershipError::NotFound => ApiError::ConnectionNotFound,
                OwnershipError::ReconnectRequired => ApiError::ReconnectRequired,
                OwnershipError::NangoUnavailable(_) => ApiError::ServiceUnavailable {
                    code: "nango_unavailable",
                    message: String::from(
                        "The connection could not be checked with Nango; try again in a moment.",
                    ),
                },
                OwnershipError::Store(error) => {
                    tracing::error!(%error, "reading a connection's owner failed");
                    storage_unavailable()
                }
            })?;

        match self.quota.take(&analysis.owner).await {
            Ok(QuotaDecision::Allowed) => {}
            Ok(QuotaDecision::Exceeded {
                retry_after_seconds,
            }) => {
                return Err(ApiError::TooManyRequests {
                    retry_after_seconds,
                });
            }
            Err(error) => {
                tracing::error!(%error, "counting the caller's analyses failed");
                return Err(storage_unavailable());
            }
        }

        let id = analysis.id.clone();
        self.store.create(analysis).await.map_err(|error| {
            tracing::error!(analysis_id = %id, %error, "storing a new analysis failed");
            storage_unavailable()
        })?;

        if let Err(error) = self.queue.enqueue(&id).await {
            tracing::error!(analysis_id = %id, %error, "queueing an analysis failed; marking it failed");
            let failure = AnalysisError {
                code: FailureCode::EnqueueFailed,
                message: String::from("The analysis could not be queued; request a new one."),
            };
            if let Err(store_error) = self
                .store
                .fail_unclaimed(&id, &failure, OffsetDateTime::now_utc())
                .await
            {
                tracing::error!(analysis_id = %id, error = %store_error, "marking an unqueued analysis failed did not work");
            }
            return Err(ApiError::ServiceUnavailable {
                code: FailureCode::EnqueueFailed.as_str(),
                message: format!("Analysis {id} could not be queued and is marked failed; try again in a moment."),
            });
        }

        tracing::info!(analysis_id = %id, repo = %analysis.repository, "analysis accepted");
        Ok(accepted_response(StatusCode::ACCEPTED, analysis))
    }

    async fn get_analysis(&self, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let caller = identity::caller(request, self.config.auth_mode)?;
        let not_found = ApiError::NotFound {
            resource: "Analysis",
        };

        let Some(id) = AnalysisId::parse(id) else {
            return Err(not_found);
        };
        let analysis = self.store.get(&id).await.map_err(|error: StoreError| {
            tracing::error!(analysis_id = %id, %error, "reading an analysis failed");
            storage_unavailable()
        })?;

        // Another user's analysis gets the same response as a missing one.
        match analysis {
            Some(analysis) if analysis.owner == caller => Ok(super::json_response(
                StatusCode::OK,
                &AnalysisView::from(&analysis),
            )),
            _ => Err(not_found),
        }
    }
}

/// Builds the response to an accepted or replayed analysis request: its id, status and status URL.
fn accepted_response(status: StatusCode, analysis: &Analysis) -> Response<Body> {
    let status_url = format!("/api/analyses/{}", analysis.id);
    let body = json!({ "id": analysis.id.to_string(), "status": analysis.status.as_str(), "statusUrl": status_url });
    let mut response = super::json_response(status, &body);
    if let Ok(location) = HeaderValue::from_str(&status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Reads `connectionId` and `repo`, rejecting any other field.
fn parse_analyze_fields(
    object: &Map<String, Value>,
) -> Result<(ConnectionId, RepositoryName), ApiError> {
    if let Some(unknown) = object
        .keys()
        .find(|key| !ANALYZE_FIELDS.contains(&key.as_str()))
    {
        return Err(ApiError::invalid_field(
            unknown,
            format!("{unknown} is not a field of this request: send only connectionId and repo."),
        ));
    }

    let connection_id = body::required_string(
        object,
        "connectionId",
        "the id of the user's Nango connection",
    )?;
    let connection_id = ConnectionId::parse(connection_id).map_err(|error| {
        ApiError::invalid_field("connectionId", format!("connectionId {error}."))
    })?;

    let repo = body::required_string(object, "repo", "a GitHub repository as \"owner/name\"")?;
    let repository = RepositoryName::parse(repo).map_err(|error| {
        ApiError::invalid_field("repo", format!("repo {repo:?} is invalid: {error}."))
    })?;

    Ok((connection_id, repository))
}

fn storage_unavailable() -> ApiError {
    ApiError::ServiceUnavailable {
        code: "storage_unavailable",
        message: String::from(
            "The analysis service could not reach its database; try again in a moment.",
        ),
    }
}

fn route(method: &Method, path: &str) -> Route<Endpoint> {
    match segments(path).as_slice() {
        ["api", "analyze-prs"] if method == Method::POST => Route::Handle(Endpoint::Analyze),
        ["api", "analyze-prs"] => Route::WrongMethod { allow: "POST" },
        ["api", "analyses", id] if method == Method::GET => {
            Route::Handle(Endpoint::GetAnalysis((*id).to_owned()))
        }
        ["api", "analyses", _] => Route::WrongMethod { allow: "GET" },
        _ => Route::NotFound,
    }
}
