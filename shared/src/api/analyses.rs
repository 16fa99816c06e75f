//! The analyze API: `POST /api/analyze-prs` accepts an analysis and queues it,
//! `GET /api/analyses/{id}` returns it to its owner.

use std::sync::Arc;

use lambda_http::http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use time::OffsetDateTime;

use super::analysis_view::AnalysisView;
use super::routing::{dispatch, request_span, segments, Route};
use super::{body, identity, ApiError};
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
    config: ApiConfig,
}

impl AnalysesApi {
    pub fn new(
        store: Arc<dyn AnalysisStore>,
        queue: Arc<dyn AnalysisQueue>,
        config: ApiConfig,
    ) -> Self {
        Self {
            store,
            queue,
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

        if let Some(unknown) = object
            .keys()
            .find(|key| !ANALYZE_FIELDS.contains(&key.as_str()))
        {
            return Err(ApiError::invalid_field(
                unknown,
                format!(
                    "{unknown} is not a field of this request: send only connectionId and repo."
                ),
            ));
        }
        let connection_id = body::required_string(
            &object,
            "connectionId",
            "the id of the user's Nango connection",
        )?;
        let connection_id = ConnectionId::parse(connection_id).map_err(|error| {
            ApiError::invalid_field("connectionId", format!("connectionId {error}."))
        })?;
        let repo = body::required_string(&object, "repo", "a GitHub repository as \"owner/name\"")?;
        let repository = RepositoryName::parse(repo).map_err(|error| {
            ApiError::invalid_field("repo", format!("repo {repo:?} is invalid: {error}."))
        })?;

        let analysis = Analysis::new(owner, repository, connection_id, OffsetDateTime::now_utc());
        let id = analysis.id.clone();
        self.store.create(&analysis).await.map_err(|error| {
            tracing::error!(analysis_id = %id, %error, "storing a new analysis failed");
            ApiError::ServiceUnavailable {
                code: "storage_unavailable",
                message: String::from("The analysis could not be stored; try again in a moment."),
            }
        })?;

        if let Err(error) = self.queue.enqueue(&id).await {
            tracing::error!(analysis_id = %id, %error, "queueing an analysis failed; marking it failed");
            let failure = AnalysisError {
                code: FailureCode::EnqueueFailed,
                message: String::from("The analysis could not be queued; request a new one."),
            };
            if let Err(store_error) = self
                .store
                .fail(&id, &failure, OffsetDateTime::now_utc())
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
        let status_url = format!("/api/analyses/{id}");
        let mut response = super::json_response(
            StatusCode::ACCEPTED,
            &json!({ "id": id.to_string(), "status": analysis.status.as_str(), "statusUrl": status_url }),
        );
        if let Ok(location) = HeaderValue::from_str(&status_url) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }

    async fn get_analysis(&self, request: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let caller = identity::caller(request, self.config.auth_mode)?;
        let not_found = ApiError::NotFound {
            resource: "analysis",
        };

        let Some(id) = AnalysisId::parse(id) else {
            return Err(not_found);
        };
        let analysis = self.store.get(&id).await.map_err(|error: StoreError| {
            tracing::error!(analysis_id = %id, %error, "reading an analysis failed");
            ApiError::ServiceUnavailable {
                code: "storage_unavailable",
                message: String::from("The analysis could not be read; try again in a moment."),
            }
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
