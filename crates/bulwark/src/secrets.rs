//! `bulwark secrets rotate`: moves every Secret to a new encryption key
//! while the server runs, by upstream's documented procedure — add the key
//! second, make it first, rewrite every Secret, drop the old key — with the
//! server's automatic reload of the configuration file between the steps
//! (it publishes the SHA-256 of the file it uses on `/metrics`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bulwark_encryption::{Config, ProviderKind};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};

/// What `rotate` needs.
pub(crate) struct RotateOptions {
    /// The EncryptionConfiguration the server reads.
    pub(crate) config: PathBuf,
    /// An admin kubeconfig for the running server.
    pub(crate) kubeconfig: PathBuf,
    /// The new key's name (default `key-<unix time>`).
    pub(crate) key_name: Option<String>,
    /// How long to wait for the server to load each step.
    pub(crate) timeout: Duration,
}

/// Runs the rotation; prints each step.
pub(crate) async fn rotate(options: RotateOptions) -> anyhow::Result<()> {
    let client = admin_client(&options.kubeconfig).await?;
    let config = bulwark_encryption::load(&options.config)?;
    let (kind, old) = config
        .write_key("", "secrets")
        .map(|(kind, name)| (kind, name.to_owned()))
        .context("Secrets are not encrypted (the first provider for secrets is identity): nothing to rotate")?;
    let kind = match kind {
        // aesgcm keys wear out with use; rotate to the default provider.
        ProviderKind::AesGcm => ProviderKind::Secretbox,
        other => other,
    };
    let new = options.key_name.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("key-{now}")
    });

    let added = bulwark_encryption::add_key(&config, kind, &new)?;
    apply(&client, &options, &added).await?;
    println!("added key {new:?} (readers first)");
    let promoted = bulwark_encryption::promote(&added, &new)?;
    apply(&client, &options, &promoted).await?;
    println!("key {new:?} now encrypts new writes");

    let rewritten = rewrite_all(&client).await?;
    println!("rewrote {rewritten} Secrets under key {new:?}");

    match bulwark_encryption::remove_key(&promoted, &old) {
        Ok(removed) => {
            apply(&client, &options, &removed).await?;
            println!("removed key {old:?}");
        }
        Err(err) => println!("kept key {old:?}: {err}"),
    }
    Ok(())
}

async fn admin_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    client.apiserver_version().await.context(
        "the API server does not answer: start it first (the rotation rewrites Secrets through the API)",
    )?;
    Ok(client)
}

/// Writes `config` and waits until the server uses it.
async fn apply(
    client: &kube::Client,
    options: &RotateOptions,
    config: &Config,
) -> anyhow::Result<()> {
    bulwark_encryption::save(&options.config, config)?;
    let text = std::fs::read_to_string(&options.config)?;
    let want = ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let needle = format!("bulwark_encryption_config_info{{hash=\"{want}\"}}");
    let deadline = Instant::now() + options.timeout;
    loop {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        if let Ok(metrics) = client.request_text(request).await
            && metrics.contains(&needle)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the server did not load {} within {:?}; is it the server of this data dir?",
                options.config.display(),
                options.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes every Secret back unchanged: the server stores a value that is
/// under an old key again, under the current one.
async fn rewrite_all(client: &kube::Client) -> anyhow::Result<usize> {
    let all: Api<Secret> = Api::all(client.clone());
    let mut count = 0;
    for secret in all.list(&ListParams::default()).await?.items {
        let (Some(namespace), Some(name)) = (
            secret.metadata.namespace.clone(),
            secret.metadata.name.clone(),
        ) else {
            continue;
        };
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let mut current = secret;
        for attempt in 0.. {
            match api.replace(&name, &PostParams::default(), &current).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < 10 => {
                    match api.get_opt(&name).await? {
                        Some(fresh) => current = fresh,
                        None => break,
                    }
                }
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("rewriting Secret {namespace}/{name}"));
                }
            }
        }
        count += 1;
    }
    Ok(count)
}
