//! The router: resolves a request's model to a group, orders its deployments with a
//! strategy, and runs the one failover loop of the workspace.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use llm_core::{
    Attempt, ChatJson, ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind,
    Result, TimeoutPhase,
};
use tokio::time::Instant;
use tracing::Instrument;

use crate::{
    CooldownPolicy, Deployment, DeploymentStatus, RandomSource, RetryBudgetConfig, SplitMix64,
    StrategyKind,
    budget::RetryBudget,
    group::Group,
    health::{Clock, Permit, Unavailable},
    shared::{LocalState, MINUTE_MS, SharedDeployment, SharedState, SharedStateStatus},
    stream::{Committed, attempt_deadline, committed, until_first_content},
};

/// Router-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    /// The strategy used unless a request overrides it.
    pub strategy: StrategyKind,
    /// Cooldown rules.
    pub cooldown: CooldownPolicy,
    /// Passes over a group's pool before moving to its fallbacks (at least 1). The first pass
    /// is failover (each deployment once); later passes retry deployments this request
    /// already tried, and draw on the retry budget.
    pub max_rounds: u32,
    /// Backoff before the second pass, doubling per pass, with full jitter.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// The deadline of a whole request, failover included (for streams, until the first
    /// content).
    pub timeout: Duration,
    /// The longest the router waits for a resting deployment when every candidate rests;
    /// longer rests (a revoked key's five minutes) fail fast with their `Retry-After`.
    pub max_wait: Duration,
    /// How many repeat attempts (passes after the first) the router may add to its traffic.
    pub retry_budget: RetryBudgetConfig,
    /// Groups tried, in order, when a group's own deployments all failed.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// Groups with a larger context window, tried when a request is too long for a group.
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    /// Other names for groups: alias → group.
    pub aliases: BTreeMap<String, String>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            strategy: StrategyKind::RoundRobin,
            cooldown: CooldownPolicy::default(),
            max_rounds: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            timeout: Duration::from_secs(300),
            max_wait: Duration::from_secs(30),
            retry_budget: RetryBudgetConfig::default(),
            fallbacks: BTreeMap::new(),
            context_window_fallbacks: BTreeMap::new(),
            aliases: BTreeMap::new(),
        }
    }
}

/// Per-request routing options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RouteOptions {
    /// Use this strategy instead of the router's.
    pub strategy: Option<StrategyKind>,
}

impl RouteOptions {
    /// Options that override the strategy.
    #[must_use]
    pub fn strategy(strategy: StrategyKind) -> Self {
        Self {
            strategy: Some(strategy),
        }
    }
}

/// Builds a [`Router`].
#[derive(Debug, Default)]
pub struct RouterBuilder {
    name: Option<String>,
    config: RouterConfig,
    deployments: Vec<Deployment>,
    random: Option<Arc<dyn RandomSource>>,
    shared: Option<Arc<dyn SharedState>>,
}

impl RouterBuilder {
    /// The router's name in logs and errors (default `router`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Router-wide settings.
    #[must_use]
    pub fn config(mut self, config: RouterConfig) -> Self {
        self.config = config;
        self
    }

    /// Add a deployment.
    #[must_use]
    pub fn deployment(mut self, deployment: Deployment) -> Self {
        self.deployments.push(deployment);
        self
    }

    /// Add deployments.
    #[must_use]
    pub fn deployments(mut self, deployments: impl IntoIterator<Item = Deployment>) -> Self {
        self.deployments.extend(deployments);
        self
    }

    /// The random source of the randomized strategies (seed one in tests).
    #[must_use]
    pub fn random_source(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = Some(random);
        self
    }

    /// Where deployments' cooldowns, probes and rpm/tpm windows are shared with other
    /// replicas (default [`LocalState`]: this process only).
    #[must_use]
    pub fn shared_state(mut self, shared: Arc<dyn SharedState>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] when there is no deployment, two share an id, or a
    /// fallback or alias names a group that does not exist.
    pub fn build(self) -> Result<Router> {
        if self.deployments.is_empty() {
            return Err(Error::config("a router needs at least one deployment"));
        }
        let deployments: Vec<Arc<Deployment>> =
            self.deployments.into_iter().map(Arc::new).collect();
        let mut seen = HashSet::new();
        for deployment in &deployments {
            if !seen.insert(deployment.id()) {
                return Err(Error::config(format!(
                    "two deployments are labelled `{}`; labels must be unique",
                    deployment.id()
                )));
            }
        }
        let mut members: BTreeMap<&str, Vec<Arc<Deployment>>> = BTreeMap::new();
        for deployment in &deployments {
            members
                .entry(deployment.config.model.as_str())
                .or_default()
                .push(Arc::clone(deployment));
        }
        let groups: HashMap<String, Arc<Group>> = members
            .into_iter()
            .map(|(name, members)| (name.to_owned(), Arc::new(Group::new(name, members))))
            .collect();
        let config = self.config;
        let known = |name: &str| groups.contains_key(name);
        for (field, table) in [
            ("fallbacks", &config.fallbacks),
            ("context_window_fallbacks", &config.context_window_fallbacks),
        ] {
            for (from, targets) in table {
                for target in std::iter::once(from).chain(targets) {
                    if !known(target) {
                        return Err(Error::config(format!(
                            "router.{field}: `{target}` is not a configured model"
                        )));
                    }
                }
            }
        }
        for (alias, target) in &config.aliases {
            if !known(target) {
                return Err(Error::config(format!(
                    "router.aliases: `{alias}` points to `{target}`, which is not a configured model"
                )));
            }
        }
        let default_group = Arc::new(Group::new("", deployments.clone()));
        let shared = self.shared.unwrap_or_else(|| Arc::new(LocalState));
        shared.attach(
            deployments
                .iter()
                .map(|d| SharedDeployment {
                    key: d.shared_key().to_owned(),
                    cell: Arc::clone(&d.health.cell),
                    rpm: d.config.rpm,
                    tpm: d.config.tpm,
                })
                .collect(),
        );
        Ok(Router {
            inner: Arc::new(Inner {
                name: self.name.unwrap_or_else(|| "router".to_owned()),
                budget: RetryBudget::new(config.retry_budget),
                config,
                groups,
                default_group,
                deployments,
                random: self
                    .random
                    .unwrap_or_else(|| Arc::new(SplitMix64::from_time())),
                clock: Clock::new(),
                shared,
            }),
        })
    }
}

/// Many deployments behaving as one reliable provider. It implements [`ChatProvider`], so
/// routers nest (a deployment may be a router).
///
/// Cloning is cheap and shares health.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    config: RouterConfig,
    groups: HashMap<String, Arc<Group>>,
    default_group: Arc<Group>,
    deployments: Vec<Arc<Deployment>>,
    random: Arc<dyn RandomSource>,
    budget: RetryBudget,
    clock: Clock,
    shared: Arc<dyn SharedState>,
}

/// What one attempt produced.
enum Outcome {
    Chat(ChatResponse),
    Json(ChatJson),
    Stream(ChatStream),
}

/// What a route asks each deployment for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// [`ChatProvider::chat`].
    Chat,
    /// [`ChatProvider::chat_json`].
    Json,
    /// [`ChatProvider::stream`].
    Stream,
}

impl Router {
    /// Start building a router.
    #[must_use]
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// Every deployment's health.
    #[must_use]
    pub fn status(&self) -> Vec<DeploymentStatus> {
        self.inner
            .deployments
            .iter()
            .map(|d| DeploymentStatus::of(d, self.inner.clock))
            .collect()
    }

    /// Whether deployments' health is shared with other replicas, and how fresh it is.
    /// Also starts the sharing (which otherwise starts with the first request) when called
    /// inside an async runtime.
    #[must_use]
    pub fn shared_state(&self) -> SharedStateStatus {
        self.inner.shared.start();
        self.inner.shared.status()
    }

    /// The model names requests may use: every group and alias, sorted.
    #[must_use]
    pub fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .groups
            .keys()
            .chain(self.inner.config.aliases.keys())
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The deployments, in configuration order.
    #[must_use]
    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.inner.deployments
    }

    /// The deadline of a whole request, failover included ([`RouterConfig::timeout`]).
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    /// [`ChatProvider::chat`] with per-request options.
    ///
    /// # Errors
    ///
    /// A non-retryable error of the first deployment that returned one (for example
    /// [`ErrorKind::InvalidRequest`]), [`ErrorKind::NotFound`] for a model that is not
    /// configured, or [`ErrorKind::AllAttemptsFailed`] listing every attempt.
    pub async fn chat_with(
        &self,
        request: &ChatRequest,
        options: &RouteOptions,
    ) -> Result<ChatResponse> {
        match self.route(request, options, Mode::Chat).await? {
            Outcome::Chat(response) => Ok(response),
            Outcome::Json(_) | Outcome::Stream(_) => Err(Error::config(
                "the router produced another kind of answer for a chat call",
            )),
        }
    }

    /// [`ChatProvider::chat_json`] with per-request options: the answer as JSON, as the
    /// deployment that gave it wrote it (see [`ChatProvider::chat_json`]).
    ///
    /// # Errors
    ///
    /// As [`Router::chat_with`].
    pub async fn chat_json_with(
        &self,
        request: &ChatRequest,
        options: &RouteOptions,
    ) -> Result<ChatJson> {
        match self.route(request, options, Mode::Json).await? {
            Outcome::Json(answer) => Ok(answer),
            Outcome::Chat(_) | Outcome::Stream(_) => Err(Error::config(
                "the router produced another kind of answer for a JSON chat call",
            )),
        }
    }

    /// [`ChatProvider::stream`] with per-request options.
    ///
    /// # Errors
    ///
    /// As [`Router::chat_with`], for failures before the first content.
    pub async fn stream_with(
        &self,
        request: &ChatRequest,
        options: &RouteOptions,
    ) -> Result<ChatStream> {
        match self.route(request, options, Mode::Stream).await? {
            Outcome::Stream(stream) => Ok(stream),
            Outcome::Chat(_) | Outcome::Json(_) => Err(Error::config(
                "the router produced an answer for a stream call",
            )),
        }
    }

    fn resolve(&self, model: Option<&str>) -> Result<Arc<Group>> {
        let inner = &self.inner;
        let Some(model) = model.filter(|m| !m.is_empty()) else {
            return Ok(Arc::clone(&inner.default_group));
        };
        let name = inner
            .config
            .aliases
            .get(model)
            .map_or(model, String::as_str);
        inner.groups.get(name).cloned().ok_or_else(|| {
            Error::ModelNotFound(
                format!(
                    "model `{model}` is not configured; available models: {}",
                    self.models().join(", ")
                )
                .into(),
            )
        })
    }

    fn groups_named(&self, names: Option<&Vec<String>>) -> Vec<Arc<Group>> {
        names
            .into_iter()
            .flatten()
            .filter_map(|name| self.inner.groups.get(name).cloned())
            .collect()
    }

    /// The failover loop.
    async fn route(
        &self,
        request: &ChatRequest,
        options: &RouteOptions,
        mode: Mode,
    ) -> Result<Outcome> {
        let inner = &self.inner;
        let config = &inner.config;
        let clock = inner.clock;
        let deadline = Instant::now() + config.timeout;
        inner.shared.start();
        inner.budget.deposit(clock.now_ms());
        let first = self.resolve(request.model.as_deref())?;
        let strategy = options.strategy.unwrap_or(config.strategy).strategy();

        let mut chain = vec![Arc::clone(&first)];
        chain.extend(self.groups_named(config.fallbacks.get(first.name())));
        let mut context_fallback_used = false;
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut order = Vec::with_capacity(first.deployments().len());
        let mut link = 0;

        'chain: while link < chain.len() {
            let group = Arc::clone(&chain[link]);
            let mut rounds = 0;
            // When every member rests, the router waits, in total at most `max_wait`.
            let mut wait_limit: Option<Instant> = None;
            loop {
                strategy.order(&group, &*inner.random, &mut order);
                let mut tried = 0usize;
                let mut earliest: Option<u64> = None;
                // Some member waits only for its share of the rpm quota (a round trip to the
                // shared store), not for a rest: worth waiting for even past `max_wait`.
                let mut leasing: Option<u64> = None;
                for &index in &order {
                    let Some(deployment) = group.deployments().get(index as usize) else {
                        continue;
                    };
                    if Instant::now() >= deadline {
                        break 'chain;
                    }
                    let now = clock.now_ms();
                    let probe = match deployment.health.try_acquire(
                        now,
                        deployment.config.rpm,
                        deployment.config.tpm,
                    ) {
                        Ok(probe) => probe,
                        Err(unavailable) => {
                            let until = match unavailable {
                                Unavailable::Cooling(until) | Unavailable::Limited(until) => until,
                                Unavailable::Leasing(until) => {
                                    leasing = Some(leasing.map_or(until, |l| l.min(until)));
                                    until
                                }
                                Unavailable::Probing => now + duration_ms(config.backoff_base),
                            };
                            earliest = Some(earliest.map_or(until, |e| e.min(until)));
                            continue;
                        }
                    };
                    let permit = Permit::new(Arc::clone(deployment), probe);
                    // Moving to a deployment this request has not tried is failover and free;
                    // a repeat attempt (a later pass) draws on the retry budget.
                    if rounds > 0 && !inner.budget.try_withdraw(now) {
                        drop(permit);
                        tracing::warn!(router = %inner.name, "retry budget exhausted; not failing over");
                        let kind = attempts
                            .last()
                            .map_or(ErrorKind::UpstreamServer, |a| a.kind);
                        attempts.push(Attempt::note(
                            inner.name.as_str(),
                            kind,
                            "retry budget exhausted: no more retries allowed right now",
                            None,
                        ));
                        break 'chain;
                    }
                    tried += 1;
                    let span = tracing::debug_span!(
                        "llm.attempt",
                        router = %inner.name,
                        group = %group.name(),
                        deployment = %deployment.id(),
                        attempt = attempts.len() + 1,
                        probe,
                    );
                    let attempt = self.attempt(permit, request, deadline, mode);
                    // Without a subscriber for the span, no `Instrumented` layer around the
                    // attempt (it moves the attempt's future once more and polls through it).
                    let result = if span.is_disabled() {
                        attempt.await
                    } else {
                        attempt.instrument(span).await
                    };
                    let error = match result {
                        Ok(outcome) => return Ok(outcome),
                        Err(error) => error,
                    };
                    tracing::debug!(deployment = %deployment.id(), kind = %error.kind(), "attempt failed");
                    let retryable = retryable(&error);
                    record(&mut attempts, deployment.id(), &error, &config.cooldown);
                    if error.kind() == ErrorKind::ContextLengthExceeded && !context_fallback_used {
                        let larger =
                            self.groups_named(config.context_window_fallbacks.get(group.name()));
                        if !larger.is_empty() {
                            context_fallback_used = true;
                            chain = larger;
                            link = 0;
                            continue 'chain;
                        }
                    }
                    if !retryable {
                        return Err(error);
                    }
                }
                if tried == 0 {
                    // Every member is resting: wait for the first to come back if the wait is
                    // short and leaves room for the attempt before the deadline.
                    let limit = *wait_limit.get_or_insert_with(|| Instant::now() + config.max_wait);
                    if let Some(until) = earliest
                        && clock.instant(until) < deadline
                        && (clock.instant(until) <= limit || leasing == Some(until))
                    {
                        tokio::time::sleep_until(clock.instant(until)).await;
                        continue;
                    }
                    resting(&group, clock, &mut attempts);
                    break;
                }
                rounds += 1;
                if rounds >= config.max_rounds.max(1) {
                    break;
                }
                let backoff = self.backoff(rounds);
                if Instant::now() + backoff >= deadline {
                    break;
                }
                tokio::time::sleep(backoff).await;
            }
            link += 1;
        }
        if attempts.is_empty() {
            return Err(Error::Timeout {
                provider: inner.name.clone().into(),
                phase: TimeoutPhase::Total,
                after: config.timeout,
            });
        }
        Err(Error::AllAttemptsFailed(attempts.into_boxed_slice()))
    }

    /// Full-jitter exponential backoff before pass `round + 1`.
    fn backoff(&self, round: u32) -> Duration {
        let config = &self.inner.config;
        let factor = 1u32
            .checked_shl(round.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        let cap = config
            .backoff_base
            .saturating_mul(factor)
            .min(config.backoff_max);
        let cap_ms = duration_ms(cap).max(1);
        Duration::from_millis(self.inner.random.below(cap_ms + 1))
    }

    /// One attempt on one deployment; health is recorded through the permit.
    async fn attempt(
        &self,
        mut permit: Permit,
        request: &ChatRequest,
        deadline: Instant,
        mode: Mode,
    ) -> Result<Outcome> {
        let inner = &self.inner;
        let deployment = Arc::clone(permit.deployment());
        let timeouts = deployment.config.timeouts;
        let started = Instant::now();
        let timeout_error = |phase, until: Instant| Error::Timeout {
            provider: deployment.id().to_owned().into(),
            phase,
            after: until.saturating_duration_since(started),
        };
        if mode != Mode::Stream {
            let until = attempt_deadline(timeouts.total, deadline);
            let call = async {
                Ok(if mode == Mode::Json {
                    Outcome::Json(deployment.provider.chat_json(request).await?)
                } else {
                    Outcome::Chat(deployment.provider.chat(request).await?)
                })
            };
            let result = tokio::time::timeout_at(until, call)
                .await
                .unwrap_or_else(|_| Err(timeout_error(TimeoutPhase::Total, until)));
            return match result {
                Ok(outcome) => {
                    let usage = match &outcome {
                        Outcome::Chat(response) => response.usage.as_ref(),
                        Outcome::Json(answer) => answer.usage.as_ref(),
                        Outcome::Stream(_) => None,
                    };
                    let tokens = usage.map_or(0, |u| u.total_tokens);
                    permit.succeed(Some(started.elapsed()), tokens, inner.clock.now_ms());
                    Ok(outcome)
                }
                Err(error) => {
                    permit.fail(&error, &inner.config.cooldown, inner.clock.now_ms());
                    Err(error)
                }
            };
        }
        let until = attempt_deadline(timeouts.first_token, deadline);
        let opened = tokio::time::timeout_at(until, async {
            let mut stream = deployment.provider.stream(request).await?;
            let buffered = until_first_content(&mut stream, deployment.id()).await?;
            Ok((stream, buffered))
        })
        .await
        .unwrap_or_else(|_| Err(timeout_error(TimeoutPhase::FirstByte, until)));
        match opened {
            Ok((stream, buffered)) => {
                permit.responsive(started.elapsed(), inner.clock.now_ms());
                Ok(Outcome::Stream(committed(Committed {
                    buffered,
                    inner: stream,
                    permit,
                    idle: timeouts.idle,
                    policy: inner.config.cooldown,
                    clock: inner.clock,
                })))
            }
            Err(error) => {
                permit.fail(&error, &inner.config.cooldown, inner.clock.now_ms());
                Err(error)
            }
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}

/// Whether the router should try another deployment after `error`. A nested router's
/// aggregate is retryable when any of its attempts was.
fn retryable(error: &Error) -> bool {
    match error {
        Error::AllAttemptsFailed(attempts) => attempts.iter().any(|a| a.kind.is_retryable()),
        other => other.is_retryable(),
    }
}

/// Record a failed attempt, flattening a nested router's attempts. A rate limit without
/// the upstream's hint carries the rest the router gave the deployment, so the caller still
/// learns when to come back.
fn record(attempts: &mut Vec<Attempt>, deployment: &str, error: &Error, policy: &CooldownPolicy) {
    match error {
        Error::AllAttemptsFailed(inner) => attempts.extend(inner.iter().cloned()),
        other => {
            let mut attempt = Attempt::new(deployment, other);
            if attempt.kind == ErrorKind::RateLimited && attempt.retry_after.is_none() {
                attempt.retry_after = policy.immediate(ErrorKind::RateLimited, None);
            }
            attempts.push(attempt);
        }
    }
}

/// Explain a group whose every member was resting.
fn resting(group: &Group, clock: Clock, attempts: &mut Vec<Attempt>) {
    let now = clock.now_ms();
    for deployment in group.deployments() {
        let until = deployment.health.cooldown_until();
        let cooling = until > now;
        let left = Duration::from_millis(until.saturating_sub(now));
        let last = deployment.health.last_error();
        let (message, kind, retry_after) = match last {
            _ if cooling => (
                match last {
                    Some(kind) => format!("cooling down for {left:.1?} after {kind}"),
                    None => format!("cooling down for {left:.1?}"),
                },
                last.unwrap_or(ErrorKind::RateLimited),
                Some(left),
            ),
            _ if deployment.health.is_probing(now) => (
                "being probed after a cooldown".to_owned(),
                last.unwrap_or(ErrorKind::RateLimited),
                None,
            ),
            _ => {
                // rpm/tpm windows are wall-clock minutes: the next one starts the quota afresh.
                let next = (now / MINUTE_MS + 1) * MINUTE_MS;
                (
                    "over its requests- or tokens-per-minute limit".to_owned(),
                    ErrorKind::RateLimited,
                    Some(Duration::from_millis(next - now)),
                )
            }
        };
        attempts.push(Attempt::note(deployment.id(), kind, message, retry_after));
    }
}

#[async_trait]
impl ChatProvider for Router {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.chat_with(request, &RouteOptions::default()).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        self.stream_with(request, &RouteOptions::default()).await
    }

    async fn chat_json(&self, request: &ChatRequest) -> Result<ChatJson> {
        self.chat_json_with(request, &RouteOptions::default()).await
    }
}
