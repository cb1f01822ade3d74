//! TODO
pub async fn run(_: crate::config::Config, _: crate::auth::AuthChain) -> anyhow::Result<()> {
    anyhow::bail!("stub: the server is not wired into this build yet")
}
