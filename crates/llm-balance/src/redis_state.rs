//! Deployments' shared health through Redis (feature `redis`): local first, reconciled in
//! the background.
//!
//! The request path reads and writes the [`SharedCell`]s only. One task per
//! [`RedisState`] reconciles them with Redis in one pipelined round trip every `refresh`,
//! and at once when a cell asks (a cooldown started, a probe was claimed or ended, the rpm
//! lease runs low). A round reads the change counter `{prefix}epoch` and runs one Lua
//! script (atomic per deployment) for each deployment with something to write; whoever
//! publishes a cooldown, a recovery or a probe increments the counter, and a replica that
//! sees it move reads every deployment at once (as it does every second anyway):
//!
//! - **Cooldowns**: a cooldown that starts is written at once; the later deadline wins;
//!   the key lives until the deadline plus `cooldown_retention`, so trips in a row are
//!   remembered. A successful probe deletes it for everyone. Others read it within
//!   `refresh`.
//! - **Probes**: a replica probing a deployment takes a lease (`SET NX PX probe_lease`);
//!   others that see it do not probe.
//! - **rpm**: quota is leased from the minute's shared count in chunks (a fiftieth of the
//!   limit), so the shared count never exceeds the limit; the next chunk is asked for when
//!   half of the current one is left. **tpm**: tokens are added in batches; a deployment
//!   whose shared count reached the limit rests until the next minute.
//! - **Failure**: every round trip is bounded by `timeout`. A failed one opens the breaker:
//!   cells fall back to local state (rpm/tpm counted per replica), one warning is logged,
//!   and the task reconnects with backoff (`reconnect_min` doubling to `reconnect_max`),
//!   logging once more when sharing resumes. No request ever waits on it.

use std::{
    fmt,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use llm_core::{Error, ExposeSecret, Result, SecretString};
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use tokio::sync::Notify;

use crate::{
    RandomSource, SplitMix64,
    shared::{
        MINUTE_MS, SharedCell, SharedDeployment, SharedState, SharedStateStatus, lease_chunk,
    },
};

/// The reconciliation of one deployment: writes what this replica learnt, returns what all
/// replicas know. KEYS: cooldown, probe lease, this minute's requests, this minute's
/// tokens. ARGV: now, local deadline (0 unless in the future), local trips, local kind,
/// recovered at, probe op (0 none, 1 claim, 2 release), replica id, probe lease ms,
/// requests to add, lease wanted, rpm limit (0 for none), tokens to add, window key ms to
/// live, cooldown retention ms.
const SYNC_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local r_until, r_trips, r_kind = 0, 0, 0
local cool = redis.call('GET', KEYS[1])
if cool then
  local a, b, c = string.match(cool, '^(%d+):(%d+):(%d+)$')
  if a then r_until, r_trips, r_kind = tonumber(a), tonumber(b), tonumber(c) end
end
if r_until > 0 and tonumber(ARGV[5]) >= r_until then
  redis.call('DEL', KEYS[1])
  r_until, r_trips, r_kind = 0, 0, 0
end
local l_until, l_trips = tonumber(ARGV[2]), tonumber(ARGV[3])
if l_until > now and (l_until > r_until or (l_until == r_until and l_trips > r_trips)) then
  if l_until > r_until then r_kind = tonumber(ARGV[4]) end
  r_until = l_until
  if l_trips > r_trips then r_trips = l_trips end
  redis.call('SET', KEYS[1], string.format('%d:%d:%d', r_until, r_trips, r_kind),
    'PX', r_until - now + tonumber(ARGV[14]))
end
local op = tonumber(ARGV[6])
if op == 1 then
  redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8], 'NX')
elseif op == 2 and redis.call('GET', KEYS[2]) == ARGV[7] then
  redis.call('DEL', KEYS[2])
end
local probe_ttl = 0
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[7] then probe_ttl = redis.call('PTTL', KEYS[2]) end
local used
local add = tonumber(ARGV[9])
if add > 0 then
  used = redis.call('INCRBY', KEYS[3], add)
  redis.call('PEXPIRE', KEYS[3], ARGV[13])
else
  used = tonumber(redis.call('GET', KEYS[3]) or '0')
end
local grant = 0
local want, limit = tonumber(ARGV[10]), tonumber(ARGV[11])
if want > 0 and limit > 0 and used < limit then
  grant = math.min(want, limit - used)
  used = redis.call('INCRBY', KEYS[3], grant)
  redis.call('PEXPIRE', KEYS[3], ARGV[13])
end
local t_used
local tokens = tonumber(ARGV[12])
if tokens > 0 then
  t_used = redis.call('INCRBY', KEYS[4], tokens)
  redis.call('PEXPIRE', KEYS[4], ARGV[13])
else
  t_used = tonumber(redis.call('GET', KEYS[4]) or '0')
end
return {r_until, r_trips, r_kind, probe_ttl, used, grant, t_used}
";

/// Settings of [`RedisState`].
#[derive(Clone)]
pub struct RedisStateConfig {
    /// `redis://[user:password@]host[:port][/db]`, `rediss://` for TLS,
    /// `redis+unix:///path`, or `redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]`
    /// (the master of a Sentinel service). A password in it is a secret.
    pub url: SecretString,
    /// How often cells are reconciled, at the latest: the staleness of what this replica
    /// knows about the others when nothing urgent happens (default 50 ms).
    pub refresh: Duration,
    /// The longest a connection attempt or a reconciliation may take before Redis counts
    /// as unreachable (default 100 ms).
    pub timeout: Duration,
    /// The first wait before reconnecting (default 100 ms); it doubles per failure.
    pub reconnect_min: Duration,
    /// The longest wait before reconnecting (default 5 s).
    pub reconnect_max: Duration,
    /// How long a replica's probe lease lasts if it never says the probe ended (it crashed)
    /// (default 30 s).
    pub probe_lease: Duration,
    /// How long a cooldown is remembered after its deadline, so trips in a row double the
    /// rest across replicas (default 10 min).
    pub cooldown_retention: Duration,
    /// Prefix of every key (default `llmf:`); give replicas serving different fleets from
    /// one Redis different prefixes.
    pub key_prefix: String,
}

impl RedisStateConfig {
    /// The defaults, for `url`.
    #[must_use]
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            refresh: Duration::from_millis(50),
            timeout: Duration::from_millis(100),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            probe_lease: Duration::from_secs(30),
            cooldown_retention: Duration::from_secs(600),
            key_prefix: "llmf:".to_owned(),
        }
    }
}

impl fmt::Debug for RedisStateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStateConfig")
            .field("url", &mask_redis_url(self.url.expose_secret()))
            .field("refresh", &self.refresh)
            .field("timeout", &self.timeout)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("probe_lease", &self.probe_lease)
            .field("cooldown_retention", &self.cooldown_retention)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// A Redis URL with its password (and user) replaced by `***`, for logs and errors.
#[must_use]
pub fn mask_redis_url(url: &str) -> String {
    match url_parts(url) {
        Some(parts) if parts.userinfo => {
            format!("{}://***@{}{}", parts.scheme, parts.hosts, parts.path)
        }
        Some(_) => url.to_owned(),
        None => "<not a URL>".to_owned(),
    }
}

/// The password of a Redis URL (`redis://[user]:password@host`, or `redis://password@host`
/// as redis-rs reads a lone user information), if it has one.
#[must_use]
pub fn redis_url_password(url: &str) -> Option<&str> {
    url_parts(url)
        .map(|parts| parts.password)
        .filter(|password| !password.is_empty())
}

/// A Redis URL taken apart: `scheme://[user[:password]@]hosts[/path]`.
struct UrlParts<'a> {
    scheme: &'a str,
    /// Whether there is user information (`…@`).
    userinfo: bool,
    user: &'a str,
    password: &'a str,
    /// One `host:port`, or several separated by commas (Sentinel).
    hosts: &'a str,
    /// From the first `/` after the hosts, or empty.
    path: &'a str,
}

fn url_parts(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let (user, password) = userinfo.map_or(("", ""), |userinfo| {
        userinfo.split_once(':').unwrap_or(("", userinfo))
    });
    Some(UrlParts {
        scheme,
        userinfo: userinfo.is_some(),
        user,
        password,
        hosts,
        path,
    })
}

/// Deployments' cooldowns, probes and rpm/tpm windows shared by every replica connected to
/// one Redis. See the module documentation of `llm_balance` and `docs/scale-out.md`.
#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("config", &self.inner.config)
            .field("replica", &self.inner.replica)
            .finish_non_exhaustive()
    }
}

/// Where the Redis to use is.
enum Target {
    /// One server (or a managed single endpoint).
    Single(redis::Client),
    /// The master of a Sentinel service, asked of the sentinels at each (re)connection.
    Sentinel {
        sentinels: Vec<String>,
        service: String,
        node: redis::sentinel::SentinelNodeConnectionInfo,
    },
}

/// `redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]`: the sentinels
/// (contacted without credentials), the service name, and the master's database and
/// credentials.
fn sentinel_target(url: &str) -> std::result::Result<Target, String> {
    let parts = url_parts(url).ok_or("not a URL")?;
    let hosts = parts.hosts;
    let path = parts.path;
    let sentinels: Vec<String> = hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| format!("redis://{host}"))
        .collect();
    if sentinels.is_empty() {
        return Err("a Sentinel URL names at least one sentinel (host:port)".to_owned());
    }
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    let service = segments
        .next()
        .ok_or("a Sentinel URL names the service after the hosts (redis+sentinel://host:26379/mymaster)")?
        .to_owned();
    let mut info = redis::RedisConnectionInfo::default();
    if let Some(db) = segments.next() {
        info = info.set_db(
            db.parse()
                .map_err(|_| format!("`{db}` is not a database number"))?,
        );
    }
    if !parts.user.is_empty() {
        info = info.set_username(parts.user);
    }
    if !parts.password.is_empty() {
        info = info.set_password(parts.password);
    }
    Ok(Target::Sentinel {
        sentinels,
        service,
        node: redis::sentinel::SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(info),
    })
}

struct Inner {
    target: Target,
    config: RedisStateConfig,
    /// Identifies this process's probe leases.
    replica: String,
    deployments: Mutex<Vec<SharedDeployment>>,
    wake: Arc<Notify>,
    started: AtomicBool,
    connected: AtomicBool,
    /// Unix ms of the last successful reconciliation (0 for none).
    last_ok: AtomicU64,
    disconnects: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl RedisState {
    /// A shared state on the Redis at `config.url`. Connects lazily, in the background:
    /// building never waits on Redis, and an unreachable Redis only means local state.
    ///
    /// # Errors
    ///
    /// [`llm_core::ErrorKind::Configuration`] when the URL is not a Redis URL this build
    /// supports (Redis Cluster URLs are not).
    pub fn new(config: RedisStateConfig) -> Result<Self> {
        let url = config.url.expose_secret();
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        let invalid = |why: String| {
            Error::config(format!(
                "shared_state: `{}` is not a valid Redis URL: {}",
                mask_redis_url(url),
                scrub(&why, url)
            ))
        };
        let target = match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" | "valkey" | "valkeys" => Target::Single(
                redis::Client::open(url).map_err(|error| invalid(error.to_string()))?,
            ),
            "redis+sentinel" => sentinel_target(url).map_err(invalid)?,
            _ => {
                return Err(Error::config(format!(
                    "shared_state: `{}` is not a supported Redis URL: use redis://host:port, rediss:// (TLS), \
                     redis+unix:///path or redis+sentinel://host:26379[,host:26379]/service[/db] \
                     (Redis Cluster is not supported in this build)",
                    mask_redis_url(url)
                )));
            }
        };
        let random = SplitMix64::from_time();
        let replica = format!("{:016x}{:08x}", random.below(u64::MAX), std::process::id());
        Ok(Self {
            inner: Arc::new(Inner {
                target,
                config,
                replica,
                deployments: Mutex::new(Vec::new()),
                wake: Arc::new(Notify::new()),
                started: AtomicBool::new(false),
                connected: AtomicBool::new(false),
                last_ok: AtomicU64::new(0),
                disconnects: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        })
    }
}

impl SharedState for RedisState {
    fn attach(&self, deployments: Vec<SharedDeployment>) {
        let mut attached = self.inner.deployments.lock();
        for deployment in deployments {
            if deployment.cell.attach(Arc::clone(&self.inner.wake)) {
                attached.push(deployment);
            }
        }
    }

    fn start(&self) {
        if self.inner.started.load(Ordering::Acquire) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current()
            && self
                .inner
                .started
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            runtime.spawn(run(Arc::downgrade(&self.inner)));
        }
    }

    fn status(&self) -> SharedStateStatus {
        let inner = &self.inner;
        let connected = inner.connected.load(Ordering::Acquire);
        let last_ok = inner.last_ok.load(Ordering::Acquire);
        SharedStateStatus {
            backend: "redis",
            shared: connected,
            connected,
            staleness_ms: (last_ok > 0).then(|| unix_ms().saturating_sub(last_ok)),
            refresh_ms: Some(millis(inner.config.refresh)),
            last_error: if connected {
                None
            } else {
                inner.last_error.lock().clone().or_else(|| {
                    Some(if inner.started.load(Ordering::Acquire) {
                        "connecting".to_owned()
                    } else {
                        "not started: no request has been routed yet".to_owned()
                    })
                })
            },
            disconnects: inner.disconnects.load(Ordering::Acquire),
        }
    }
}

/// What the task remembers per deployment between reconciliations.
#[derive(Debug, Default, Clone, Copy)]
struct Published {
    /// This replica holds (or asked for) the probe lease.
    probe: bool,
    /// The cooldown deadline this replica last published or learnt.
    until: u64,
    /// The last probe success it published.
    recovered: u64,
    /// Its request count of the minute when last reconciled (tpm deployments are read
    /// again once they took requests).
    admitted: u64,
}

/// What the task remembers between reconciliations.
#[derive(Debug, Default)]
struct Memory {
    cells: Vec<Published>,
    /// The change counter (`{prefix}epoch`, incremented by every replica that publishes a
    /// cooldown, a recovery or a probe) as of the last full read; `None` before the first.
    epoch: Option<i64>,
    /// Unix ms of the last full read.
    full_at: u64,
    /// Counts taken from cells by a round that has not answered yet: given back when that
    /// round was cancelled (it timed out), so they are not lost.
    taken: Vec<Sent>,
}

/// The background task: connect, reconcile every `refresh` or when woken, reconnect with
/// backoff. Ends when the state is dropped.
async fn run(state: Weak<Inner>) {
    let mut memory = Memory::default();
    let mut failures: u32 = 0;
    loop {
        if failures > 0 {
            let Some(wait) = state.upgrade().map(|inner| {
                let factor = 1u32
                    .checked_shl(failures.saturating_sub(1).min(16))
                    .unwrap_or(u32::MAX);
                inner
                    .config
                    .reconnect_min
                    .saturating_mul(factor)
                    .min(inner.config.reconnect_max)
            }) else {
                return;
            };
            tokio::time::sleep(wait).await;
        }
        let Some(inner) = state.upgrade() else {
            return;
        };
        let timeout = inner.config.timeout;
        let (mut connection, sha) = match tokio::time::timeout(timeout, connect(&inner)).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(error)) => {
                inner.down(&error.to_string());
                failures = failures.saturating_add(1);
                continue;
            }
            Err(_) => {
                inner.down("connecting timed out");
                failures = failures.saturating_add(1);
                continue;
            }
        };
        drop(inner);
        loop {
            let Some(inner) = state.upgrade() else {
                return;
            };
            let round =
                tokio::time::timeout(timeout, inner.sync(&mut connection, &sha, &mut memory)).await;
            match round {
                Ok(Ok(())) => {
                    inner.up();
                    failures = 0;
                }
                Ok(Err(error)) => {
                    inner.down(&error.to_string());
                    break;
                }
                Err(_) => {
                    inner.down("a reconciliation timed out");
                    break;
                }
            }
            let wake = Arc::clone(&inner.wake);
            let refresh = inner.config.refresh;
            drop(inner);
            tokio::select! {
                () = tokio::time::sleep(refresh) => {}
                () = wake.notified() => {}
            }
        }
        failures = failures.saturating_add(1);
    }
}

async fn connect(inner: &Inner) -> redis::RedisResult<(MultiplexedConnection, String)> {
    let settings = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(inner.config.timeout))
        .set_response_timeout(Some(inner.config.timeout));
    let mut connection = match &inner.target {
        Target::Single(client) => {
            client
                .get_multiplexed_async_connection_with_config(&settings)
                .await?
        }
        Target::Sentinel {
            sentinels,
            service,
            node,
        } => {
            // The sentinels say which server is the master now (after a failover, the new
            // one: a lost connection comes back here).
            redis::sentinel::SentinelClient::build(
                sentinels.clone(),
                service.as_str(),
                Some(node.clone()),
                redis::sentinel::SentinelServerType::Master,
            )?
            .get_async_connection_with_config(&settings)
            .await?
        }
    };
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(SYNC_SCRIPT)
        .query_async(&mut connection)
        .await?;
    Ok((connection, sha))
}

/// What one round sent for one deployment, to restore on failure and remember on success.
#[derive(Debug, Clone)]
struct Sent {
    index: usize,
    requests: u64,
    tokens: u64,
    wanted: bool,
    probe_op: u8,
    recovered: u64,
    admitted: u64,
}

/// Give the counts and lease requests of a round that failed back to their cells.
fn give_back(deployments: &[SharedDeployment], sent: &[Sent]) {
    for sent in sent {
        let Some(deployment) = deployments.get(sent.index) else {
            continue;
        };
        let cell = &deployment.cell;
        cell.unsynced_requests
            .fetch_add(sent.requests, Ordering::AcqRel);
        cell.unsynced_tokens
            .fetch_add(sent.tokens, Ordering::AcqRel);
        if sent.wanted {
            cell.want_lease.store(true, Ordering::Release);
        }
    }
}

/// How often every deployment is read even when no replica announced a change (probe
/// leases that expired with their replica, keys that expired).
const FULL_READ_MS: u64 = 1_000;

impl Inner {
    /// One reconciliation: the deployments with something to say (or all of them, when
    /// another replica announced a change or the periodic full read is due).
    async fn sync(
        &self,
        connection: &mut MultiplexedConnection,
        sha: &str,
        memory: &mut Memory,
    ) -> redis::RedisResult<()> {
        let deployments = self.deployments.lock().clone();
        memory.cells.resize(deployments.len(), Published::default());
        // A round cancelled by its timeout took counts that never reached Redis.
        give_back(&deployments, &std::mem::take(&mut memory.taken));
        let now = unix_ms();
        let full = memory.epoch.is_none() || now.saturating_sub(memory.full_at) >= FULL_READ_MS;
        let again = self
            .round(connection, sha, &deployments, memory, now, full)
            .await?;
        if again {
            // Another replica changed something: read everything now, not a tick later.
            self.round(connection, sha, &deployments, memory, unix_ms(), true)
                .await?;
        }
        Ok(())
    }

    /// One pipelined round trip. Returns whether a full read is needed now.
    async fn round(
        &self,
        connection: &mut MultiplexedConnection,
        sha: &str,
        deployments: &[SharedDeployment],
        memory: &mut Memory,
        now: u64,
        full: bool,
    ) -> redis::RedisResult<bool> {
        let window = now / MINUTE_MS;
        let window_ttl = MINUTE_MS * 2;
        let prefix = &self.config.key_prefix;
        let epoch_key = format!("{prefix}epoch");
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&epoch_key);
        let mut sent: Vec<Sent> = Vec::new();
        let mut announce = false;
        for (index, (deployment, known)) in deployments.iter().zip(&memory.cells).enumerate() {
            let cell = &deployment.cell;
            let until = cell.cooldown_until.load(Ordering::Acquire);
            let publish_until = if until > now { until } else { 0 };
            let recovered = cell.recovered_at.load(Ordering::Acquire);
            let admitted = cell.minute.first.load(Ordering::Acquire);
            let probing = cell.probing.load(Ordering::Acquire);
            let probe_op = match (probing, known.probe) {
                (true, false) => 1u8,
                (false, true) => 2,
                _ => 0,
            };
            let news = probe_op != 0
                || (publish_until != 0 && publish_until != known.until)
                || recovered != known.recovered;
            let shared = cell.shared.load(Ordering::Acquire);
            let wanted = shared && cell.want_lease.load(Ordering::Acquire);
            let counts = cell.unsynced_requests.load(Ordering::Acquire) > 0
                || cell.unsynced_tokens.load(Ordering::Acquire) > 0
                || (deployment.tpm.is_some() && admitted != known.admitted);
            if !(full || news || wanted || counts) {
                continue;
            }
            announce |= news;
            let wanted = wanted && cell.want_lease.swap(false, Ordering::AcqRel);
            let want = match deployment.rpm {
                Some(rpm) if wanted => lease_chunk(rpm),
                _ => 0,
            };
            let requests = cell.unsynced_requests.swap(0, Ordering::AcqRel);
            let tokens = cell.unsynced_tokens.swap(0, Ordering::AcqRel);
            let tag = tag(&deployment.key);
            pipe.cmd("EVALSHA")
                .arg(sha)
                .arg(4)
                .arg(format!("{prefix}{{{tag}}}:cool"))
                .arg(format!("{prefix}{{{tag}}}:probe"))
                .arg(format!("{prefix}{{{tag}}}:rpm:{window}"))
                .arg(format!("{prefix}{{{tag}}}:tpm:{window}"))
                .arg(now)
                .arg(publish_until)
                .arg(cell.trips.load(Ordering::Acquire))
                .arg(cell.cool_kind.load(Ordering::Acquire))
                .arg(recovered)
                .arg(probe_op)
                .arg(&self.replica)
                .arg(millis(self.config.probe_lease).max(1))
                .arg(requests)
                .arg(want)
                .arg(deployment.rpm.unwrap_or(0))
                .arg(tokens)
                .arg(window_ttl)
                .arg(millis(self.config.cooldown_retention).max(1));
            sent.push(Sent {
                index,
                requests,
                tokens,
                wanted,
                probe_op,
                recovered,
                admitted,
            });
        }
        if announce {
            pipe.cmd("INCR").arg(&epoch_key);
        }
        let expected = 1 + sent.len() + usize::from(announce);
        memory.taken.clone_from(&sent);
        let replies: redis::RedisResult<Vec<redis::Value>> = pipe.query_async(connection).await;
        memory.taken.clear();
        let replies = match replies {
            Ok(replies) if replies.len() == expected => replies,
            other => {
                // A round that reached Redis before failing may count twice, which errs on
                // the safe side.
                give_back(deployments, &sent);
                return other.and_then(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "a reconciliation answered with the wrong number of replies",
                    )))
                });
            }
        };
        let integer = |value: &redis::Value| -> redis::RedisResult<i64> {
            match value {
                redis::Value::Nil => Ok(0),
                other => Ok(redis::from_redis_value_ref(other)?),
            }
        };
        let seen = integer(&replies[0])?;
        for (sent, reply) in sent.iter().zip(&replies[1..]) {
            let reply: Vec<i64> = redis::from_redis_value_ref(reply)?;
            let deployment = &deployments[sent.index];
            apply(deployment, &reply, now, window, sent.wanted);
            let known = &mut memory.cells[sent.index];
            match sent.probe_op {
                1 => known.probe = true,
                2 => known.probe = false,
                _ => {}
            }
            // What this replica now knows, so that it does not announce it again.
            known.until = deployment.cell.cooldown_until.load(Ordering::Acquire);
            known.recovered = sent.recovered;
            known.admitted = sent.admitted;
        }
        // Another replica announced a change since the last full read: read everything.
        // Our own announcement moves the counter by one; more means someone else's too.
        let after = if announce {
            integer(&replies[expected - 1])?
        } else {
            seen
        };
        let raced = announce && after != seen + 1;
        let covered = if raced { seen } else { after };
        if full {
            memory.epoch = Some(covered);
            memory.full_at = now;
            return Ok(false);
        }
        if memory.epoch != Some(seen) {
            return Ok(true);
        }
        memory.epoch = Some(covered);
        Ok(raced)
    }

    fn up(&self) {
        for deployment in self.deployments.lock().iter() {
            deployment.cell.shared.store(true, Ordering::Release);
        }
        self.last_ok.store(unix_ms(), Ordering::Release);
        if !self.connected.swap(true, Ordering::AcqRel) {
            *self.last_error.lock() = None;
            tracing::info!(
                redis = %mask_redis_url(self.config.url.expose_secret()),
                "shared state: connected to Redis; deployments' health is shared with other replicas"
            );
        }
    }

    fn down(&self, error: &str) {
        for deployment in self.deployments.lock().iter() {
            deployment.cell.shared.store(false, Ordering::Release);
        }
        let error = scrub(error, self.config.url.expose_secret());
        let was_connected = self.connected.swap(false, Ordering::AcqRel);
        let first = {
            let mut last = self.last_error.lock();
            let first = last.is_none();
            *last = Some(error.clone());
            first
        };
        if was_connected {
            self.disconnects.fetch_add(1, Ordering::AcqRel);
        }
        // Once per outage, not per retry.
        if was_connected || first {
            tracing::warn!(
                redis = %mask_redis_url(self.config.url.expose_secret()),
                %error,
                "shared state: Redis is unreachable; serving on this replica's own state and reconnecting in the background"
            );
        }
    }
}

/// Merge what all replicas know into one cell.
fn apply(deployment: &SharedDeployment, reply: &[i64], now: u64, window: u64, wanted: bool) {
    let value = |i: usize| reply.get(i).copied().unwrap_or(0).max(0).cast_unsigned();
    let (remote_until, remote_trips, remote_kind) = (value(0), value(1), value(2));
    let (probe_ttl, used, grant, tokens) = (value(3), value(4), value(5), value(6));
    let cell: &SharedCell = &deployment.cell;
    let local = cell.cooldown_until.load(Ordering::Acquire);
    if remote_until > 0 {
        if remote_until > local {
            cell.cooldown_until
                .fetch_max(remote_until, Ordering::AcqRel);
            cell.cool_kind
                .store(u8::try_from(remote_kind).unwrap_or(0), Ordering::Release);
        }
        cell.trips.fetch_max(
            u32::try_from(remote_trips).unwrap_or(u32::MAX),
            Ordering::AcqRel,
        );
    } else if local != 0
        && local <= now
        && !cell.probing.load(Ordering::Acquire)
        && cell
            .cooldown_until
            .compare_exchange(local, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        // Its cooldown passed and no replica holds one any more: a probe elsewhere
        // succeeded.
        cell.trips.store(0, Ordering::Release);
        cell.cool_kind.store(0, Ordering::Release);
    }
    cell.probe_elsewhere_until.store(
        if probe_ttl > 0 { now + probe_ttl } else { 0 },
        Ordering::Release,
    );
    if let Some(limit) = deployment.rpm {
        if grant > 0 && cell.lease_window.load(Ordering::Acquire) == window {
            cell.lease_left.fetch_add(grant, Ordering::AcqRel);
        }
        if wanted {
            // Answered (granted, or the minute is full): requests wait again from now on.
            cell.lease_wanted_at.store(0, Ordering::Release);
        }
        if used >= limit {
            cell.full_window.store(window + 1, Ordering::Release);
        }
    }
    cell.shared_tokens.store(tokens, Ordering::Release);
    cell.tokens_window.store(window, Ordering::Release);
}

/// A key's hash tag: the identity without braces (Redis Cluster would read them).
fn tag(key: &str) -> String {
    key.replace(['{', '}'], "_")
}

/// An error message with the URL's password taken out.
fn scrub(message: &str, url: &str) -> String {
    let message = message.replace(url, &mask_redis_url(url));
    match redis_url_password(url) {
        Some(password) => message.replace(password, "***"),
        None => message,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX / 4)
        })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_masked_and_errors_scrubbed() {
        assert_eq!(
            mask_redis_url("redis://:s3cret@cache:6379/2"),
            "redis://***@cache:6379/2"
        );
        assert_eq!(mask_redis_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            scrub("auth failed for s3cret", "redis://user:s3cret@cache:6379"),
            "auth failed for ***"
        );
        assert_eq!(redis_url_password("redis://:pw@h:6379/0"), Some("pw"));
        assert_eq!(redis_url_password("redis://user:pw@h:6379"), Some("pw"));
        assert_eq!(redis_url_password("rediss://token@h"), Some("token"));
        assert_eq!(redis_url_password("redis://h:6379"), None);
    }

    #[test]
    fn unsupported_urls_are_configuration_errors() {
        for url in [
            "redis+cluster://h:6379",
            "http://h",
            "cache:6379",
            "redis+sentinel://h:26379",
            "redis+sentinel:///mymaster",
            "redis+sentinel://h:26379/mymaster/zero",
        ] {
            let error =
                RedisState::new(RedisStateConfig::new(SecretString::from(url))).unwrap_err();
            assert_eq!(error.kind(), llm_core::ErrorKind::Configuration, "{url}");
        }
        let state = RedisState::new(RedisStateConfig::new(SecretString::from(
            "redis://:hunter2@127.0.0.1:1/0",
        )))
        .unwrap();
        let shown = format!("{state:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://***@127.0.0.1:1/0"), "{shown}");
        let sentinel = RedisState::new(RedisStateConfig::new(SecretString::from(
            "redis+sentinel://:hunter2@10.0.0.1:26379,10.0.0.2:26379/mymaster/2",
        )))
        .unwrap();
        let shown = format!("{sentinel:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
