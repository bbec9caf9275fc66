//! `moa mcp`: a mixture that agents can call, as a Model Context Protocol server over
//! stdio (the official Rust SDK, `rmcp`). Two tools: `ask` runs a recipe on a question and
//! answers with the text and a short account (models, tokens, cost, time), sending a
//! progress notification as each layer finishes; `list_recipes` names what `ask` can use.
//! A run that fails is a tool error (`isError`), its message the one `moa serve` gives a
//! client: the kind of each failure, never a provider's words or an address.

use crate::{Clock, Transport, keys};
use moa_core::{Event, Message, Outcome, Recipe, Run, RunOptions};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, RequestMetaObject, ServerCapabilities,
    ServerConfig,
};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What `ask` takes.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Ask {
    /// The question or task, as a user would write it.
    pub question: String,
    /// The recipe to ask (see list_recipes); the server's default when left out.
    #[serde(default)]
    pub recipe: Option<String>,
    /// A system prompt for every model of the mixture.
    #[serde(default)]
    pub system: Option<String>,
}

/// The server: the recipes it offers and how it runs them.
#[derive(Clone)]
pub struct Mcp {
    recipes: Arc<BTreeMap<String, Recipe>>,
    default: String,
    transport: Transport,
    resolver: Option<Arc<crate::plugin::HostResolver>>,
    #[expect(dead_code, reason = "read through the code #[tool_handler] writes")]
    tool_router: ToolRouter<Mcp>,
}

#[tool_router]
impl Mcp {
    /// A server offering `recipes`, `default` when a call names none.
    pub fn new(
        recipes: BTreeMap<String, Recipe>,
        default: String,
        transport: Transport,
        resolver: Option<Arc<crate::plugin::HostResolver>>,
    ) -> Mcp {
        Mcp { recipes: Arc::new(recipes), default, transport, resolver, tool_router: Self::tool_router() }
    }

    #[tool(description = "Ask a Mixture-of-Agents recipe: several language models answer, later \
        layers refine, and an aggregator writes one answer that is usually better than any \
        single model's. Returns the answer, then a line with the models, tokens, cost and time.")]
    async fn ask(
        &self,
        Parameters(ask): Parameters<Ask>,
        meta: RequestMetaObject,
        client: Peer<RoleServer>,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, ErrorData> {
        let name = ask.recipe.clone().unwrap_or_else(|| self.default.clone());
        let Some(recipe) = self.recipes.get(&name) else {
            let known: Vec<&str> = self.recipes.keys().map(String::as_str).collect();
            let message = format!("no recipe {name:?}; the recipes are: {}", known.join(", "));
            return Err(ErrorData::invalid_params(message, None));
        };
        let mut conversation = Vec::new();
        if let Some(system) = ask.system.filter(|s| !s.trim().is_empty()) {
            conversation.push(Message::system(system));
        }
        conversation.push(Message::user(ask.question));
        // The client's `notifications/cancelled` fires `cancel`: every call in flight stops.
        let outcome = self.run(recipe, conversation, meta, client, &cancel).await?;
        Ok(match outcome.result() {
            Ok(answer) => {
                let text = format!("{answer}\n\n— {}", account(&name, &outcome));
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(crate::serve::client_message(e))]),
        })
    }

    #[tool(description = "List the recipes `ask` can use: each one's name and what it is for.")]
    async fn list_recipes(&self) -> Result<CallToolResult, ErrorData> {
        let lines: Vec<String> = self
            .recipes
            .iter()
            .map(|(name, r)| {
                let default = if *name == self.default { " (default)" } else { "" };
                format!("{name}{default}: {}", r.description)
            })
            .collect();
        Ok(CallToolResult::success(vec![ContentBlock::text(lines.join("\n"))]))
    }
}

impl Mcp {
    /// Runs `recipe`, telling the client each finished layer when it asked for progress.
    async fn run(
        &self,
        recipe: &Recipe,
        conversation: Vec<Message>,
        meta: RequestMetaObject,
        client: Peer<RoleServer>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, ErrorData> {
        let clock = Clock::new();
        let mut options = RunOptions {
            keys: keys::from_env(recipe).into_iter().collect(),
            reports_sent: true,
            ..RunOptions::default()
        };
        if let Some(r) = &self.resolver {
            options.resolver = r.as_ref();
        }
        let mut run = Run::with_options(recipe, conversation, clock.now(), options)
            .map_err(|e| ErrorData::invalid_params(crate::serve::client_message(&e), None))?;
        // Progress goes out from its own task: the run's event callback cannot wait.
        let (tx, mut rx) = mpsc::unbounded_channel::<ProgressNotificationParam>();
        let forward = meta.get_progress_token().map(|_| {
            tokio::spawn(async move {
                while let Some(p) = rx.recv().await {
                    let _ = client.notify_progress(p).await;
                }
            })
        });
        let token = meta.get_progress_token();
        let total = (recipe.layers.len() + 1) as f64;
        let outcome = self
            .transport
            .drive(&mut run, &clock, cancel, |e| {
                if let (Event::LayerFinished { layer, succeeded, .. }, Some(token)) = (e, &token) {
                    let what = if *layer == recipe.layers.len() { "the aggregator" } else { "a layer" };
                    let message = format!("{what} finished ({succeeded} answered)");
                    let p = ProgressNotificationParam::new(token.clone(), (*layer + 1) as f64)
                        .with_total(total)
                        .with_message(message);
                    let _ = tx.send(p);
                }
            })
            .await;
        drop(tx);
        if let Some(f) = forward {
            let _ = f.await;
        }
        Ok(outcome)
    }
}

/// The run in one line: the recipe, its models, tokens, cost and time.
pub fn account(recipe: &str, o: &Outcome) -> String {
    let mut models: BTreeMap<String, usize> = BTreeMap::new();
    for call in o.layers.iter().flat_map(|l| &l.calls) {
        *models.entry(format!("{}:{}", call.provider, call.model)).or_default() += 1;
    }
    let models: Vec<String> =
        models.iter().map(|(m, n)| if *n > 1 { format!("{m} ×{n}") } else { m.clone() }).collect();
    let cost = o.cost.map(|c| format!(", ${c:.4}")).unwrap_or_default();
    format!("moa recipe {recipe}: {}; {} tokens{cost}; {:.1} s", models.join(", "), o.usage.total(), o.wall_ms / 1000.0)
}

#[tool_handler]
impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("moa", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "moa runs Mixture-of-Agents recipes. Call `ask` with a question for a \
                 considered answer from several models; `list_recipes` names the recipes.",
            )
    }
}

/// Serves `mcp` on stdin and stdout until the client closes them.
pub async fn serve_stdio(mcp: Mcp) -> Result<(), String> {
    let service = mcp.serve(rmcp::transport::stdio()).await.map_err(|e| format!("MCP: {e}"))?;
    service.waiting().await.map_err(|e| format!("MCP: {e}"))?;
    Ok(())
}
