//! Everything in one process: the coordinator (`tandem_server::serve_on`, on a temporary data
//! directory) and the two bank services, each on a free local port. Used by `bank demo` and
//! by the tests; `bank serve` and `tandem serve` run the same pieces as separate processes.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::Http;
use crate::service::{self, Service};
use crate::store::Bank;

/// The running pieces; dropping it stops nothing, call [`Demo::stop`].
pub struct Demo {
    pub coordinator: String,
    /// `[PostgreSQL bank, MariaDB bank]`.
    pub banks: [String; 2],
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    _data_dir: tempfile::TempDir,
}

impl Demo {
    /// Starts the coordinator and the banks on `pg_url` and `mysql_url`, with tables of run
    /// `tag`.
    pub async fn start(pg_url: &str, mysql_url: &str, tag: &str) -> anyhow::Result<Demo> {
        let data_dir = tempfile::tempdir()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cfg = tandem_server::ServerConfig {
            listen: addr,
            data_dir: data_dir.path().to_path_buf(),
            shutdown_grace: Duration::from_secs(5),
            ..tandem_server::ServerConfig::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let mut stops = vec![stop];
        let mut tasks = vec![tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(e) = tandem_server::serve_on(listener, cfg, shutdown).await {
                tracing::error!(error = %e, "coordinator stopped");
            }
        })];
        let coordinator = format!("http://{addr}");
        let mut banks = Vec::new();
        for url in [pg_url, mysql_url] {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let public_url = format!("http://{}", listener.local_addr()?);
            let svc = Arc::new(Service {
                bank: Bank::connect(url, tag).await?,
                coordinator: coordinator.clone(),
                public_url: public_url.clone(),
                http: Http::new(),
            });
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            tasks.push(tokio::spawn(async move {
                let app = service::router(svc);
                let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = stopped.await;
                });
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "bank service stopped");
                }
            }));
            banks.push(public_url);
        }
        let http = Http::new();
        for _ in 0..250 {
            if matches!(
                http.get(&format!("{coordinator}/api/ping")).await,
                Ok((200, _))
            ) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let [pg, my]: [String; 2] = banks.try_into().map_err(|_| anyhow::anyhow!("two banks"))?;
        Ok(Demo {
            coordinator,
            banks: [pg, my],
            stops,
            tasks,
            _data_dir: data_dir,
        })
    }

    /// Stops the banks and the coordinator (which flushes its log).
    pub async fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
