//! Runs the scheduler on its own against the cluster of the current
//! kubeconfig (`KUBECONFIG`), for trying it by hand:
//! `KUBECONFIG=… cargo run -p bulwark-scheduler --example run`.

#![allow(missing_docs)] // an example binary, not API

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    // kube's rustls needs a process-wide crypto provider; the server
    // binary installs the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::infer().await?;
    let client = kube::Client::try_from(config)?;
    bulwark_scheduler::run(client, bulwark_scheduler::SchedulerOptions::default()).await
}
