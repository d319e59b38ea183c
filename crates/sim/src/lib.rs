//! A ServiceNow instance simulator: the server side of what the connector
//! speaks (OAuth, the Table API, its errors and traps), with a `/__sim/` control
//! API for tests. It shares no parsing code with the connector's core, so a
//! misreading of ServiceNow in one cannot hide behind the same misreading in the
//! other.

pub mod clock;
pub mod conditions;
pub mod config;
pub mod data;
pub mod oauth;
pub mod posture;
pub mod query;
pub mod scenario;
mod server;
pub mod table;
pub mod time_fmt;

use std::net::SocketAddr;
use std::sync::Arc;

pub use conditions::Conditions;
pub use config::SimConfig;
pub use server::State;

/// A running simulator. Dropping it does not stop it; call [`SimHandle::stop`].
pub struct SimHandle {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`: the instance URL a local connector uses.
    pub fn instance_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The first line the binary prints: where to connect and with what.
    pub fn banner(&self) -> serde_json::Value {
        let c = &self.state.config;
        serde_json::json!({
            "instance_url": self.instance_url(),
            "username": c.username,
            "password": c.password,
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "app_user": c.app_user,
        })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts serving on an already bound listener (bind port 0 in tests).
pub async fn start(
    config: SimConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SimHandle> {
    start_with(config, Conditions::default(), listener).await
}

/// Starts serving with the given initial conditions.
pub async fn start_with(
    config: SimConfig,
    conditions: Conditions,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let state = Arc::new(State::new(config, conditions, format!("http://{addr}")));
    let app = server::router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(SimHandle {
        addr,
        state,
        stop,
        task,
    })
}
