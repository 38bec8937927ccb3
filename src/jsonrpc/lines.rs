//! Newline-delimited JSON-RPC over stdio for rmcp, with `check` in front of it: lines of at most
//! a limit, bad ones answered here, and one writer for rmcp's messages and those answers.

use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::{check, too_large};

/// Newline-delimited JSON-RPC over a byte stream (stdio) for rmcp: a reader task splits the input
/// into lines of at most `max` bytes and runs `check` on each, handing good messages to rmcp and
/// answering bad ones itself; a writer task writes rmcp's messages and those answers, each as one
/// whole line, so two messages never interleave.
pub struct LineTransport {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    outgoing: mpsc::Sender<String>,
}

impl LineTransport {
    /// The transport, and the writer task, which ends once the transport is dropped and
    /// everything queued is written.
    pub fn new<R, W>(read: R, write: W, max: usize) -> (Self, tokio::task::JoinHandle<()>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (to_rmcp, incoming) = mpsc::channel(16);
        let (outgoing, lines) = mpsc::channel(64);
        // The reader holds a weak sender so that the writer ends with the transport even while
        // the reader still waits for input.
        let answers = outgoing.downgrade();
        tokio::spawn(read_lines(read, max, to_rmcp, answers));
        let writer = tokio::spawn(write_lines(write, lines));
        (LineTransport { incoming, outgoing }, writer)
    }
}

impl Transport<RoleServer> for LineTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outgoing = self.outgoing.clone();
        async move {
            let line = serde_json::to_string(&item)?;
            outgoing
                .send(line)
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "output closed"))
        }
    }

    fn receive(
        &mut self,
    ) -> impl std::future::Future<Output = Option<ClientJsonRpcMessage>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.incoming.close();
        Ok(())
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(mut write: W, mut lines: mpsc::Receiver<String>) {
    while let Some(mut line) = lines.recv().await {
        line.push('\n');
        let written = async {
            write.write_all(line.as_bytes()).await?;
            write.flush().await
        };
        if let Err(e) = written.await {
            tracing::error!(error = %e, "cannot write to the client; closing");
            return;
        }
    }
}

async fn read_lines<R: AsyncRead + Unpin>(
    read: R,
    max: usize,
    to_rmcp: mpsc::Sender<ClientJsonRpcMessage>,
    answers: mpsc::WeakSender<String>,
) {
    let mut lines = Lines::new(read, max);
    loop {
        let verdict = match lines.next().await {
            Ok(Line::Message(bytes)) => {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                check(bytes)
            }
            Ok(Line::TooLong) => Err(too_large(max)),
            Ok(Line::End) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read from the client; closing");
                return;
            }
        };
        match verdict {
            Ok(message) => {
                if to_rmcp.send(message).await.is_err() {
                    return;
                }
            }
            Err(rejection) => {
                tracing::debug!(code = rejection.code, message = %rejection.message, "rejected a message");
                let Some(answers) = answers.upgrade() else {
                    return;
                };
                if answers.send(rejection.to_json()).await.is_err() {
                    return;
                }
            }
        }
    }
}

enum Line<'a> {
    /// One line without its `\n` (and `\r`); the last one may lack the `\n`.
    Message(&'a [u8]),
    /// A line longer than the limit: dropped as it is read, so it never takes more memory than
    /// the limit. Reported once, when it passes the limit; the rest of it is skipped.
    TooLong,
    End,
}

/// Lines of at most `max` bytes.
struct Lines<R> {
    read: BufReader<R>,
    line: Vec<u8>,
    max: usize,
    /// Inside a line already reported too long: skip to its end.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(read: R, max: usize) -> Self {
        Lines {
            read: BufReader::with_capacity(64 * 1024, read),
            line: Vec::new(),
            max,
            skipping: false,
        }
    }

    async fn next(&mut self) -> std::io::Result<Line<'_>> {
        // Give back the memory of a large message once it is handled.
        if self.line.capacity() > 1024 * 1024 {
            self.line = Vec::new();
        }
        self.line.clear();
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                self.skipping = false;
                return Ok(if self.line.is_empty() {
                    Line::End
                } else {
                    Line::Message(trim_line_end(&self.line))
                });
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let content = newline.unwrap_or(available.len());
            if self.skipping {
                self.read.consume(take);
                if newline.is_some() {
                    self.skipping = false;
                }
                continue;
            }
            if self.line.len() + content > self.max {
                self.line.clear();
                self.read.consume(take);
                self.skipping = newline.is_none();
                return Ok(Line::TooLong);
            }
            self.line.extend_from_slice(&available[..content]);
            self.read.consume(take);
            if newline.is_some() {
                return Ok(Line::Message(trim_line_end(&self.line)));
            }
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all_lines(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut lines = Lines::new(input, max);
        let mut out = Vec::new();
        loop {
            match lines.next().await.unwrap() {
                Line::Message(m) => out.push(Some(m.to_vec())),
                Line::TooLong => out.push(None),
                Line::End => return out,
            }
        }
    }

    #[tokio::test]
    async fn lines_are_cut_at_the_limit_and_the_rest_of_a_long_one_skipped() {
        let got = all_lines(b"12345\n123456\nab\r\n\n1234567890123\nlast", 5).await;
        let want: Vec<Option<Vec<u8>>> = vec![
            Some(b"12345".to_vec()),
            None,
            Some(b"ab".to_vec()),
            Some(b"".to_vec()),
            None,
            Some(b"last".to_vec()),
        ];
        assert_eq!(got, want);
        // A long line still running at the end of the input is reported once.
        assert_eq!(
            all_lines(b"ok\n0123456789", 5).await,
            vec![Some(b"ok".to_vec()), None]
        );
    }
}
