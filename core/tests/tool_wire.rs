//! Tool calls on every wire format, both ways: what OpenAI-compatible and Anthropic
//! providers are sent (tools, choice, the conversation's calls and results) and how their
//! streamed and whole answers are read back into calls.

use moa_core::provider::{self, ChatRequest, ProviderKind, ResponseParser, StreamItem, ToolCallBuffer};
use moa_core::tools::{Tool, ToolCall, ToolChoice, Tools};
use moa_core::vocab::Sampling;
use moa_core::{Message, ResponseFormat};
use serde_json::{Value, json};

fn tools(choice: ToolChoice, parallel: bool) -> Tools {
    let parameters = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    Tools {
        tools: vec![Tool { name: "weather".into(), description: Some("d".into()), parameters, strict: None }],
        choice,
        parallel,
    }
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("Be brief."),
        Message::user("Weather in Oslo and Rome?"),
        Message::tool_calls(
            "Checking.",
            vec![
                ToolCall::new("c1", "weather", r#"{"city":"Oslo"}"#),
                ToolCall::new("c2", "weather", r#"{"city":"Rome"}"#),
            ],
        ),
        Message::tool_result("c1", "12 C"),
        Message::tool_result("c2", "20 C"),
        Message::user("And tomorrow?"),
    ]
}

fn body(kind: ProviderKind, t: &Tools, format: Option<&ResponseFormat>) -> Value {
    let sampling = Sampling::default();
    let messages = conversation();
    let req = ChatRequest {
        model: "m",
        messages: &messages,
        temperature: 0.0,
        max_tokens: 10,
        sampling: &sampling,
        tools: Some(t),
        response_format: format,
    };
    serde_json::from_str(&provider::build_request(kind, "http://127.0.0.1:9/v1", None, &req).body).expect("json")
}

fn read(kind: ProviderKind, content_type: &str, bytes: &str) -> (String, Vec<ToolCall>, Option<String>) {
    let mut p = ResponseParser::new(kind, Some(content_type));
    let mut items = Vec::new();
    p.feed(bytes.as_bytes(), &mut items).expect("valid");
    p.finish(&mut items).expect("complete");
    let (mut text, mut buffer, mut finish) = (String::new(), ToolCallBuffer::default(), None);
    for item in items {
        match item {
            StreamItem::Text(t) => text.push_str(&t),
            StreamItem::ToolCall(d) => buffer.push(d),
            StreamItem::Finish(f) => finish = Some(f),
            _ => {}
        }
    }
    (text, buffer.finish(), finish)
}

#[test]
fn openai_gets_tools_choice_and_the_conversations_calls_as_openai_writes_them() {
    let format = ResponseFormat::JsonObject;
    let b = body(ProviderKind::OpenAi, &tools(ToolChoice::Function("weather".into()), false), Some(&format));
    assert_eq!(
        b["tools"][0],
        json!({"type": "function", "function": {"name": "weather", "description": "d",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    );
    assert_eq!(b["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
    assert_eq!(b["parallel_tool_calls"], false);
    assert_eq!(b["response_format"], json!({"type": "json_object"}));
    assert_eq!(b["messages"][2]["tool_calls"][1]["function"]["arguments"], r#"{"city":"Rome"}"#);
    assert_eq!(b["messages"][3], json!({"role": "tool", "content": "12 C", "tool_call_id": "c1"}));
    let auto = body(ProviderKind::OpenAi, &tools(ToolChoice::Auto, true), None);
    assert!(auto.get("parallel_tool_calls").is_none(), "the default is not sent");
}

#[test]
fn openai_calls_are_read_from_streamed_pieces_and_from_a_whole_message() {
    let sse = concat!(
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"weather","arguments":"{\"ci"}}]}}]}"#,
        "\n\n",
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"weather","arguments":"{}"}}]}}]}"#,
        "\n\n",
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Oslo\"}"}}]}}]}"#,
        "\n\n",
        r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "\n\ndata: [DONE]\n\n",
    );
    let (text, calls, finish) = read(ProviderKind::OpenAi, "text/event-stream", sse);
    assert_eq!(text, "");
    assert_eq!(calls, vec![ToolCall::new("a", "weather", r#"{"city":"Oslo"}"#), ToolCall::new("b", "weather", "{}")]);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let whole = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,
        "tool_calls":[{"id":"w","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]},
        "finish_reason":"tool_calls"}]}"#;
    let (_, calls, _) = read(ProviderKind::OpenAi, "application/json", whole);
    assert_eq!(calls, vec![ToolCall::new("w", "weather", r#"{"city":"Rome"}"#)]);
}

#[test]
fn anthropic_gets_tool_use_and_tool_result_blocks_in_alternating_turns() {
    let b = body(ProviderKind::Anthropic, &tools(ToolChoice::Required, false), None);
    assert_eq!(
        b["tools"][0],
        json!({"name": "weather", "description": "d",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}})
    );
    assert_eq!(b["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(b["system"], "Be brief.");
    let m = b["messages"].as_array().expect("messages");
    assert_eq!(m.len(), 3, "user, assistant with tool_use, one user turn with both results and the text: {m:?}");
    assert_eq!(m[1]["content"][0], json!({"type": "text", "text": "Checking."}));
    assert_eq!(
        m[1]["content"][2],
        json!({"type": "tool_use", "id": "c2", "name": "weather", "input": {"city": "Rome"}})
    );
    assert_eq!(m[2]["content"][0], json!({"type": "tool_result", "tool_use_id": "c1", "content": "12 C"}));
    assert_eq!(m[2]["content"][1]["tool_use_id"], "c2");
    assert_eq!(m[2]["content"][2], json!({"type": "text", "text": "And tomorrow?"}));
    let named = body(ProviderKind::Anthropic, &tools(ToolChoice::Function("weather".into()), true), None);
    assert_eq!(named["tool_choice"], json!({"type": "tool", "name": "weather"}));
}

#[test]
fn anthropic_tool_use_is_read_from_its_stream_and_from_a_whole_message() {
    let sse = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check.\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Oslo\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":20}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (text, calls, finish) = read(ProviderKind::Anthropic, "text/event-stream", sse);
    assert_eq!(text, "Let me check.");
    assert_eq!(calls, vec![ToolCall::new("toolu_1", "weather", r#"{"city": "Oslo"}"#)]);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let whole = r#"{"type":"message","content":[{"type":"tool_use","id":"toolu_2","name":"weather","input":{"city":"Rome"}}],
        "stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}}"#;
    let (_, calls, _) = read(ProviderKind::Anthropic, "application/json", whole);
    assert_eq!(calls, vec![ToolCall::new("toolu_2", "weather", r#"{"city":"Rome"}"#)]);
}

#[test]
fn calls_streamed_all_at_index_zero_with_their_own_ids_stay_apart() {
    // Some OpenAI-compatible servers send every call at index 0 and repeat the name.
    let sse = concat!(
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"weather","arguments":"{\"city\":"}}]}}]}"#,
        "\n\n",
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"weather","arguments":"\"Oslo\"}"}}]}}]}"#,
        "\n\n",
        r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"b","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]}}]}"#,
        "\n\n",
        r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "\n\ndata: [DONE]\n\n",
    );
    let (_, calls, _) = read(ProviderKind::OpenAi, "text/event-stream", sse);
    assert_eq!(
        calls,
        vec![ToolCall::new("a", "weather", r#"{"city":"Oslo"}"#), ToolCall::new("b", "weather", r#"{"city":"Rome"}"#)]
    );
}

/// Every field an OpenAI-compatible body can carry, at once: the whole body, as sent.
#[test]
fn the_openai_body_with_every_option_is_exactly_this() {
    let sampling = Sampling {
        top_p: Some(0.9),
        seed: Some(7),
        stop: vec!["END".into()],
        presence_penalty: Some(0.5),
        frequency_penalty: Some(-0.5),
    };
    let messages = vec![Message::system("s"), Message::user("q")];
    let t = tools(ToolChoice::Function("weather".into()), false);
    let format: ResponseFormat = serde_json::from_value(
        json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}),
    )
    .expect("a format");
    let req = ChatRequest {
        model: "m",
        messages: &messages,
        temperature: 0.7,
        max_tokens: 10,
        sampling: &sampling,
        tools: Some(&t),
        response_format: Some(&format),
    };
    let http = provider::build_request(ProviderKind::OpenAi, "http://127.0.0.1:9/v1/", Some("k"), &req);
    let body: Value = serde_json::from_str(&http.body).expect("json");
    let expected = json!({
        "frequency_penalty": -0.5,
        "max_tokens": 10,
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        "model": "m",
        "parallel_tool_calls": false,
        "presence_penalty": 0.5,
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}},
        "seed": 7,
        "stop": ["END"],
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0.7,
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}
        }}],
        "top_p": 0.9,
    });
    assert_eq!(body, expected);
    assert_eq!(http.url, "http://127.0.0.1:9/v1/chat/completions");
    // With nothing optional: only the fields every request has.
    let plain = Sampling::default();
    let req = ChatRequest { sampling: &plain, tools: None, response_format: None, temperature: 0.00001, ..req };
    let body: Value =
        serde_json::from_str(&provider::build_request(ProviderKind::OpenAi, "http://h/v1", None, &req).body)
            .expect("json");
    let keys: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["max_tokens", "messages", "model", "stream", "stream_options", "temperature"]);
    assert_eq!(body["temperature"], 0.0, "a temperature that rounds to nothing is sent as 0");
}
