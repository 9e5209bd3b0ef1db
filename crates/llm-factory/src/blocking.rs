//! The factory for code without async, in the style of `reqwest::blocking`.
//!
//! A [`LlmFactory`] owns a thread named `llm-factory-runtime` running a current-thread tokio
//! runtime; calls are sent to it as jobs and their answers waited for. `stream` returns an
//! iterator fed through a small bounded channel; dropping the iterator cancels the upstream
//! request.
//!
//! ```
//! use llm_factory::{ModelConfig, ProviderType, blocking::LlmFactory};
//!
//! let factory = LlmFactory::new(ModelConfig {
//!     provider: ProviderType::Mock,
//!     model_name: "mock-echo".into(),
//!     ..ModelConfig::default()
//! })?;
//! let answer = factory.chat("你好，世界！")?;
//! assert_eq!(answer.text().as_deref(), Some("你好，世界！"));
//!
//! let text: String = factory
//!     .stream("写一个故事")?
//!     .map(|chunk| chunk.map(|c| c.content().unwrap_or_default().to_owned()))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(text, "写一个故事");
//! # Ok::<_, llm_core::Error>(())
//! ```
//!
//! # Panics
//!
//! Every method panics when called from inside an async runtime (as tokio's blocking
//! receivers and `reqwest::blocking` do): waiting there would block the runtime's own
//! thread. From async code, use the async [`crate::LlmFactory`], or `spawn_blocking`.

use std::{fmt, path::Path, sync::Arc, thread};

use futures_util::StreamExt;
use llm_core::{ChatChunk, ChatRequest, ChatResponse, Error, Result};
use tokio::sync::{mpsc, oneshot};

use crate::{ChatOptions, DeploymentStatus, FactoryConfig};

/// Chunks buffered between the runtime thread and the iterator.
const STREAM_BUFFER: usize = 16;

enum Job {
    Chat {
        request: ChatRequest,
        options: ChatOptions,
        reply: oneshot::Sender<Result<ChatResponse>>,
    },
    Stream {
        request: ChatRequest,
        options: ChatOptions,
        reply: oneshot::Sender<Result<mpsc::Receiver<Result<ChatChunk>>>>,
    },
}

struct Inner {
    jobs: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the runtime thread's loop.
        self.jobs.take();
        if let Some(handle) = self.thread.take()
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

/// The blocking factory: the same methods as [`crate::LlmFactory`], without `async`.
///
/// Cheap to clone; the runtime thread lives while any clone or open stream does.
#[derive(Clone)]
pub struct LlmFactory {
    factory: crate::LlmFactory,
    inner: Arc<Inner>,
}

impl fmt::Debug for LlmFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::LlmFactory")
            .field("factory", &self.factory)
            .finish_non_exhaustive()
    }
}

impl LlmFactory {
    /// Wrap an async factory.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) when the runtime thread cannot
    /// be started.
    pub fn from_async(factory: crate::LlmFactory) -> Result<Self> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (ready, started) = std::sync::mpsc::channel::<Result<()>>();
        let worker = factory.clone();
        let thread = thread::Builder::new()
            .name("llm-factory-runtime".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready
                            .send(Err(Error::config(format!("cannot start the runtime: {e}"))));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                runtime.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    while let Some(job) = queue.recv().await {
                        tasks.spawn(run(worker.clone(), job));
                        while tasks.try_join_next().is_some() {}
                    }
                    // The factory was dropped: let calls in flight finish.
                    while tasks.join_next().await.is_some() {}
                });
            })
            .map_err(|e| Error::config(format!("cannot start the runtime thread: {e}")))?;
        started
            .recv()
            .map_err(|_| Error::config("the runtime thread stopped while starting"))??;
        Ok(Self {
            factory,
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                thread: Some(thread),
            }),
        })
    }

    /// See [`crate::LlmFactory::new`].
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::new`].
    pub fn new(config: impl Into<FactoryConfig>) -> Result<Self> {
        Self::from_async(crate::LlmFactory::new(config)?)
    }

    /// See [`crate::LlmFactory::from_env`].
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::from_env`].
    pub fn from_env() -> Result<Self> {
        Self::from_async(crate::LlmFactory::from_env()?)
    }

    /// See [`crate::LlmFactory::from_env_file`].
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::from_env_file`].
    pub fn from_env_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_async(crate::LlmFactory::from_env_file(path)?)
    }

    /// See [`crate::LlmFactory::from_yaml`].
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::from_yaml`].
    pub fn from_yaml(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_async(crate::LlmFactory::from_yaml(path)?)
    }

    fn send(&self, job: Job) -> Result<()> {
        self.inner
            .jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| Error::config("the factory's runtime thread has stopped"))
    }

    /// One request, one answer.
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::chat`].
    ///
    /// # Panics
    ///
    /// When called inside an async runtime (see the [module docs](self)).
    pub fn chat(&self, request: impl Into<ChatRequest>) -> Result<ChatResponse> {
        self.chat_with(request, &ChatOptions::default())
    }

    /// One request with options.
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::chat_with`].
    ///
    /// # Panics
    ///
    /// When called inside an async runtime (see the [module docs](self)).
    pub fn chat_with(
        &self,
        request: impl Into<ChatRequest>,
        options: &ChatOptions,
    ) -> Result<ChatResponse> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Chat {
            request: request.into(),
            options: *options,
            reply,
        })?;
        answer.blocking_recv().map_err(|_| stopped())?
    }

    /// One request, an iterator of chunks. Failures before the first chunk are returned
    /// here; later ones are the iterator's last item.
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::stream`].
    ///
    /// # Panics
    ///
    /// When called inside an async runtime (see the [module docs](self)).
    pub fn stream(&self, request: impl Into<ChatRequest>) -> Result<ChunkIter> {
        self.stream_with(request, &ChatOptions::default())
    }

    /// A stream with options.
    ///
    /// # Errors
    ///
    /// As [`crate::LlmFactory::stream_with`].
    ///
    /// # Panics
    ///
    /// When called inside an async runtime (see the [module docs](self)).
    pub fn stream_with(
        &self,
        request: impl Into<ChatRequest>,
        options: &ChatOptions,
    ) -> Result<ChunkIter> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Stream {
            request: request.into(),
            options: *options,
            reply,
        })?;
        let chunks = answer.blocking_recv().map_err(|_| stopped())??;
        Ok(ChunkIter {
            chunks,
            _keep_alive: Arc::clone(&self.inner),
        })
    }

    /// Every deployment's health.
    #[must_use]
    pub fn status(&self) -> Vec<DeploymentStatus> {
        self.factory.status()
    }

    /// The model names requests may use.
    #[must_use]
    pub fn models(&self) -> Vec<String> {
        self.factory.models()
    }
}

fn stopped() -> Error {
    Error::config("the factory's runtime thread stopped before answering")
}

async fn run(factory: crate::LlmFactory, job: Job) {
    match job {
        Job::Chat {
            request,
            options,
            reply,
        } => {
            let _ = reply.send(factory.chat_with(request, &options).await);
        }
        Job::Stream {
            request,
            options,
            reply,
        } => {
            let mut stream = match factory.stream_with(request, &options).await {
                Ok(stream) => stream,
                Err(error) => {
                    let _ = reply.send(Err(error));
                    return;
                }
            };
            let (tx, rx) = mpsc::channel(STREAM_BUFFER);
            if reply.send(Ok(rx)).is_err() {
                return;
            }
            loop {
                tokio::select! {
                    item = stream.next() => match item {
                        Some(item) => if tx.send(item).await.is_err() { break },
                        None => break,
                    },
                    // The iterator was dropped: stop, which drops (cancels) the upstream stream.
                    () = tx.closed() => break,
                }
            }
        }
    }
}

/// The chunks of a blocking stream. Dropping it cancels the upstream request.
pub struct ChunkIter {
    chunks: mpsc::Receiver<Result<ChatChunk>>,
    _keep_alive: Arc<Inner>,
}

impl fmt::Debug for ChunkIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkIter").finish_non_exhaustive()
    }
}

impl Iterator for ChunkIter {
    type Item = Result<ChatChunk>;

    /// # Panics
    ///
    /// When called inside an async runtime.
    fn next(&mut self) -> Option<Self::Item> {
        self.chunks.blocking_recv()
    }
}
