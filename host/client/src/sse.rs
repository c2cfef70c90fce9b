//! A Server-Sent Events parser (the WHATWG `text/event-stream` rules), fed with the chunks of
//! a response body as they come: lines end with LF, CRLF or CR (also across chunks), `:`
//! starts a comment, `data:` lines are joined with LF, an empty line dispatches.

/// One dispatched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseMessage {
    /// `event:` (`message` when absent).
    pub event: String,
    pub data: String,
    /// The last event ID when the message was dispatched (`id:` of this message or of an
    /// earlier one; the spec keeps it across messages).
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The incomplete line at the end of the last chunk.
    line: Vec<u8>,
    /// The last chunk ended with CR: an LF at the start of the next one ends no line.
    after_cr: bool,
    /// The byte-order mark may only come first.
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// `retry:` in milliseconds, if the server sent one.
    pub retry_ms: Option<u64>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `chunk`, appending every message it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseMessage>) {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        if self.started {
            return self.bytes(chunk, out);
        }
        // The byte-order mark may only come first, maybe split across chunks.
        self.line.extend_from_slice(chunk);
        if self.line.len() < BOM.len() && BOM.starts_with(&self.line) {
            return;
        }
        self.started = true;
        let head = std::mem::take(&mut self.line);
        self.bytes(head.strip_prefix(BOM).unwrap_or(&head), out);
    }

    fn bytes(&mut self, chunk: &[u8], out: &mut Vec<SseMessage>) {
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line(&line, out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseMessage>) {
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseMessage>) {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            self.data.clear();
            return;
        }
        out.push(SseMessage {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseMessage> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    fn msg(event: &str, data: &str, id: Option<&str>) -> SseMessage {
        SseMessage {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn what_axum_writes() {
        let text = b"event: change\nid: 42\ndata: {\"revision\":42,\"events\":[]}\n\nevent: progress\nid: 57\ndata: {\"revision\":57}\n\n";
        assert_eq!(
            parse_chunks(&[text]),
            [
                msg("change", r#"{"revision":42,"events":[]}"#, Some("42")),
                msg("progress", r#"{"revision":57}"#, Some("57")),
            ]
        );
    }

    #[test]
    fn every_split_of_the_stream_gives_the_same_messages() {
        let text: &[u8] = b"\xEF\xBB\xBFevent: change\r\n: comment\r\nid: 7\r\ndata: a\r\ndata:b\r\n\r\nevent: error\rdata: {\"code\":\"x\"}\r\rdata\n\n";
        let whole = parse_chunks(&[text]);
        assert_eq!(
            whole,
            [
                msg("change", "a\nb", Some("7")),
                // The id is kept across messages.
                msg("error", r#"{"code":"x"}"#, Some("7")),
                msg("message", "", Some("7")),
            ]
        );
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(
                    parse_chunks(&[&text[..i], &text[i..j], &text[j..]]),
                    whole,
                    "split at {i} and {j}"
                );
            }
        }
    }

    #[test]
    fn no_data_no_message_and_retry_is_read() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"event: nothing\nretry: 2500\n\nretry: soon\n\n", &mut out);
        assert!(out.is_empty());
        assert_eq!(p.retry_ms, Some(2500));
        // An event name does not leak into the next message.
        p.feed(b"data: x\n\n", &mut out);
        assert_eq!(out, [msg("message", "x", None)]);
        // An incomplete message is not dispatched.
        p.feed(b"data: partial\n", &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn an_id_with_nul_is_ignored() {
        let out = parse_chunks(&[b"id: 1\n\nid: 2\0\ndata: d\n\n"]);
        assert_eq!(out, [msg("message", "d", Some("1"))]);
    }
}
