//! `/containers/{id}/exec` and `/exec/...`.

use crate::client::Call;
use crate::decode::Framing;
use crate::endpoints::{content_type, Attached};
use crate::error::Result;
use crate::models::{ExecConfig, ExecCreated, ExecInspect, ExecStart};
use crate::query::{segment, Query};
use crate::stream::OutputStream;
use crate::Docker;

impl Docker {
    /// Creates an exec instance in a running container.
    pub async fn create_exec(&self, container: &str, config: &ExecConfig) -> Result<ExecCreated> {
        self.json(Call::post(format!("/containers/{}/exec", segment(container))).json(config)?).await
    }

    /// Starts an exec and returns at once; its exit code comes from `inspect_exec`.
    pub async fn start_exec_detached(&self, exec: &str) -> Result<()> {
        let body = ExecStart { detach: true, tty: false };
        self.empty(Call::post(format!("/exec/{}/start", segment(exec))).json(&body)?).await.map(|_| ())
    }

    /// Starts an exec and streams its output until the process ends. `tty`
    /// must be the flag the exec was created with: it decides the framing.
    pub async fn start_exec(&self, exec: &str, tty: bool) -> Result<OutputStream> {
        let body = ExecStart { detach: false, tty };
        let res = self.send(Call::post(format!("/exec/{}/start", segment(exec))).json(&body)?).await?;
        let framing = Framing::with_tty(content_type(&res.headers), tty);
        Ok(OutputStream::new(res.body, self.output_decoder(framing)))
    }

    /// Starts an exec created with `attach_stdin` over an upgraded
    /// connection: write its stdin, read its output.
    pub async fn start_exec_attached(&self, exec: &str, tty: bool) -> Result<Attached> {
        let body = ExecStart { detach: false, tty };
        let (headers, io) = self.upgrade(Call::post(format!("/exec/{}/start", segment(exec))).json(&body)?).await?;
        let framing = Framing::with_tty(content_type(&headers), tty);
        Ok(Attached::new(io, self.output_decoder(framing)))
    }

    /// Resizes the TTY of an exec.
    pub async fn resize_exec(&self, exec: &str, height: u32, width: u32) -> Result<()> {
        let mut q = Query::new();
        q.push("h", height).push("w", width);
        self.empty(Call::post(format!("/exec/{}/resize", segment(exec))).query(q)).await.map(|_| ())
    }

    pub async fn inspect_exec(&self, exec: &str) -> Result<ExecInspect> {
        self.json(Call::get(format!("/exec/{}/json", segment(exec)))).await
    }
}
