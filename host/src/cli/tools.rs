//! The tool and format options of `moa run`: tools from a JSON file, the choice, and the
//! answer's shape, checked here for what a file can get wrong (the run checks the rest).

use clap::Args;
use moa_core::tools::{JsonSchemaFormat, ResponseFormat, Tools};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Args, Default)]
pub(crate) struct ToolArgs {
    /// Tools the answer may call: a JSON file holding OpenAI's `tools` list (each
    /// `{"type": "function", "function": {...}}`, or the function object alone). Calls
    /// are printed after the answer, one `tool_call {...}` line each.
    #[arg(long, value_name = "FILE")]
    tools: Option<PathBuf>,
    /// `auto` (default), `none`, `required`, or the name of one function to call.
    #[arg(long, value_name = "CHOICE", requires = "tools")]
    tool_choice: Option<String>,
    /// At most one tool call in the answer.
    #[arg(long, requires = "tools")]
    no_parallel_tool_calls: bool,
    /// The answer's shape, checked before it is printed: `json` (any JSON object) or a
    /// file holding a JSON schema.
    #[arg(long, value_name = "json|FILE")]
    response_format: Option<String>,
}

impl ToolArgs {
    /// The tools, if any were given.
    pub(crate) fn tools(&self) -> Result<Option<Tools>, String> {
        let Some(path) = &self.tools else { return Ok(None) };
        let list = read_json(path)?;
        let choice = self.tool_choice.as_deref().map(|c| match c {
            "auto" | "none" | "required" => Value::String(c.to_owned()),
            name => serde_json::json!({ "type": "function", "function": { "name": name } }),
        });
        let parallel = Some(!self.no_parallel_tool_calls);
        Tools::from_openai(Some(&list), choice.as_ref(), parallel).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The answer's shape.
    pub(crate) fn response_format(&self) -> Result<ResponseFormat, String> {
        match self.response_format.as_deref() {
            None => Ok(ResponseFormat::Text),
            Some("json") => Ok(ResponseFormat::JsonObject),
            Some(path) => {
                let path = PathBuf::from(path);
                let schema = read_json(&path)?;
                let name = path.file_stem().map_or("schema".into(), |s| s.to_string_lossy().into_owned());
                Ok(ResponseFormat::JsonSchema { json_schema: JsonSchemaFormat { name, schema, strict: None } })
            }
        }
    }
}

fn read_json(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}
