//! What the transport delivers for a call: its head, body and end (or failure), read
//! into the slot's text and accounts.

use super::attempt::{Response, SlotId, SlotState};
use super::timers::Timer;
use super::{Action, CallError, DRAIN_GRACE, MAX_ERROR_BODY, NetError, Run, transport};
use crate::event::{CallId, Event, Place};
use crate::http;
use crate::provider::{self, ResponseParser, StreamItem};
use crate::usage::Usage;

impl Run {
    pub(super) fn on_transport_error(&mut self, call: CallId, error: CallError) {
        // A call that was draining has its answer already; its connection just ended.
        if self.end_drain(call) {
            return;
        }
        if let Some(i) = self.slot_of(call) {
            self.fail_attempt(i, error, None, false);
        }
    }

    pub(super) fn on_head(&mut self, call: CallId, status: u16, headers: &[(String, String)]) {
        let now = self.now;
        let Some(kind) = self.slot_of(call).map(|i| self.slots[i].kind) else { return };
        let Some((_, f)) = self.flight(call) else { return };
        // A response means the request was sent, whether or not the transport said so.
        let arm = !f.clocks_running;
        if arm {
            f.started = now;
            f.clocks_running = true;
        }
        f.accepted = (200..300).contains(&status);
        f.response = if f.accepted {
            Response::Streaming(ResponseParser::new(kind, http::header(headers, "content-type")))
        } else {
            Response::Error { status, body: Vec::new(), retry_after: http::retry_after(headers, now) }
        };
        if arm {
            self.arm_call(call);
        }
        self.touch_call(call);
    }

    pub(super) fn on_body(&mut self, call: CallId, bytes: &[u8]) {
        let now = self.now;
        let mut items = std::mem::take(&mut self.scratch);
        let (i, result, complete) = match self.flight(call) {
            None => return self.scratch = items,
            Some((i, f)) => {
                let r = match &mut f.response {
                    Response::Waiting => Err(transport(NetError::Other, "body bytes before the response head")),
                    Response::Error { body, .. } => {
                        let room = MAX_ERROR_BODY.saturating_sub(body.len());
                        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                        Ok(())
                    }
                    Response::Streaming(parser) => parser.feed(bytes, &mut items).map_err(CallError::from),
                };
                let complete = matches!(&f.response, Response::Streaming(p) if p.is_complete());
                (i, r, complete)
            }
        };
        self.touch_call(call);
        let stopped = self.apply_items(i, call, &mut items);
        self.scratch = items;
        match result {
            Err(e) => self.fail_attempt(i, e, None, true),
            // A stop sequence ends the answer; the provider would go on generating.
            Ok(()) if stopped => {
                self.queue.push_back(Action::Cancel { call });
                // Cut before its end, the provider never sends its usage: estimate it.
                let slot = &mut self.slots[i];
                if let (None, SlotState::InFlight(f)) = (slot.usage, &slot.state) {
                    slot.usage = Some(Usage::estimate(Some(f.prompt_chars), &slot.text));
                }
                self.succeed(i);
            }
            // The stream's end marker finishes the call even if the connection stays
            // open (some proxies keep it); the body gets a short grace to end by itself.
            Ok(()) if complete => {
                let provider = self.slots[i].agent.provider.clone();
                self.flush_held(i, call);
                self.succeed(i);
                // Still on the wire: it keeps its provider slot until the body ends.
                self.caps.take(&provider);
                self.draining.push((call, provider));
                self.timers.set(Timer::Drain(call), now + DRAIN_GRACE);
            }
            Ok(()) => {}
        }
    }

    /// Applies what a response yielded; returns true when a stop sequence ended the
    /// answer (what follows it is dropped).
    pub(super) fn apply_items(&mut self, i: SlotId, call: CallId, items: &mut Vec<StreamItem>) -> bool {
        let now = self.now;
        let (layer, place_slot) = self.place_of(i);
        for item in items.drain(..) {
            let slot = &mut self.slots[i];
            match item {
                StreamItem::Usage(u) => slot.usage = Some(u),
                StreamItem::ServerTime(ms) => slot.server_ms = Some(ms),
                StreamItem::Finish(reason) => slot.finish = Some(reason),
                StreamItem::ToolCall(piece) => slot.tool_buffer.push(piece),
                StreamItem::Text(piece) => {
                    if let SlotState::InFlight(f) = &mut slot.state {
                        f.first_token.get_or_insert(now);
                    }
                    let (text, hit) = slot.stop.push(&piece, &slot.agent.sampling.stop);
                    let mut text = slot.redact.push(&text, &self.redactor);
                    if hit {
                        slot.finish = Some("stop".into());
                        text.push_str(&slot.redact.flush(&self.redactor));
                    }
                    if !text.is_empty() && slot.hold {
                        slot.text.push_str(&text); // delivered once checked
                    } else if !text.is_empty() {
                        slot.text.push_str(&text);
                        if layer == self.recipe.layers.len() {
                            self.answer_first_token.get_or_insert(now);
                        }
                        let at = Place { call, layer, slot: place_slot };
                        self.queue.push_back(Action::Event(Event::TextDelta { at, text }));
                    }
                    if hit {
                        // Dropping the drain drops whatever followed the stop.
                        return true;
                    }
                }
            }
        }
        false
    }

    /// The stream ended whole: text held back as a possible stop sequence is text.
    pub(super) fn flush_held(&mut self, i: SlotId, call: CallId) {
        let slot = &mut self.slots[i];
        let held = slot.stop.flush();
        let text = slot.redact.push(&held, &self.redactor) + &slot.redact.flush(&self.redactor);
        if !text.is_empty() {
            self.slots[i].text.push_str(&text);
            if self.slots[i].hold {
                return; // delivered once checked
            }
            let (layer, slot) = self.place_of(i);
            if layer == self.recipe.layers.len() {
                self.answer_first_token.get_or_insert(self.now);
            }
            let at = Place { call, layer, slot };
            self.emit(Event::TextDelta { at, text });
        }
    }

    /// Ends the drain of `call`, if it was draining, freeing its provider slot.
    pub(super) fn end_drain(&mut self, call: CallId) -> bool {
        let Some(at) = self.draining.iter().position(|(c, _)| *c == call) else { return false };
        let (_, provider) = self.draining.swap_remove(at);
        self.timers.stop(Timer::Drain(call));
        self.caps.release(&provider);
        true
    }

    pub(super) fn on_end(&mut self, call: CallId) {
        if self.end_drain(call) {
            return;
        }
        let mut items = std::mem::take(&mut self.scratch);
        let (i, result) = match self.flight(call) {
            None => return self.scratch = items,
            Some((i, f)) => {
                let r = match &mut f.response {
                    Response::Waiting => {
                        Err((transport(NetError::Reset, "the connection closed before a response"), None))
                    }
                    Response::Error { status, body, retry_after } => Err((
                        CallError::Status { status: *status, message: provider::error_message(body) },
                        *retry_after,
                    )),
                    Response::Streaming(parser) => parser.finish(&mut items).map_err(|e| (CallError::from(e), None)),
                };
                (i, r)
            }
        };
        self.apply_items(i, call, &mut items);
        self.scratch = items;
        match result {
            Ok(()) => {
                self.flush_held(i, call);
                self.succeed(i)
            }
            Err((e, retry_after)) => self.fail_attempt(i, e, retry_after, false),
        }
    }
}
