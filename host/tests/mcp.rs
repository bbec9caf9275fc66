//! `moa mcp` with the official MCP Python SDK as its client (tests/mcp/mcp_client.py):
//! tools listed, a recipe asked with progress notifications, errors as MCP defines them.

use moa_testkit as common;

use common::Fake;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_official_mcp_client_lists_asks_with_progress_and_meets_errors() {
    if !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let recipe = |name: &str, agg: &str| {
        let text = format!(
            "description = \"{name} recipe\"\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n\
             [[layers]]\nagents = [\"fake:a\", \"fake:b\"]\n[aggregator]\nmodel = \"fake:{agg}\"\n\
             [policy]\nretries = 0\n",
            fake.base_url
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), text).expect("write");
    };
    recipe("fake", "agg;text=the final answer");
    recipe("broken", "agg;fault=500;times=9");
    let o = Command::new(common::needs::python())
        .arg(repo().join("tests/mcp/mcp_client.py"))
        .arg(env!("CARGO_BIN_EXE_moa"))
        .arg(dir.path())
        .output()
        .expect("python runs (scripts/test installs the mcp SDK in ~/.cache/moa/venv)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("mcp client: 6 checks passed"), "{out}");
}
