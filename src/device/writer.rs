//! The device writer: drains the hub's write queue onto the wire at line rate.
//!
//! This is the far end of serialhub's backpressure. Each chunk carries write
//! budget from the hub; the writer returns it byte by byte as bytes enter the
//! tty, and never lets the tty's own buffer run more than a short *lead* ahead
//! of the wire. Two mechanisms bound that lead:
//!
//! - a [`TokenBucket`] at the line rate, which models the UART for drivers
//!   that cannot report their output queue (a pty reports 0 whatever it holds);
//! - the driver's output-queue count (`TIOCOUTQ`) where it has one, which also
//!   catches a line slowed by flow control.
//!
//! Settings changes come on the same queue as the bytes. The writer applies
//! one only when the line has sent every byte before it (the driver's queue
//! is empty and the modelled line idle), then paces at the new rate.
//!
//! The writer's state (the partly written chunk, or the change it is
//! applying) lives in the struct, so its futures can be cancelled at any
//! await and resumed on a reopened device without losing or repeating a
//! byte or a change.

use std::time::{Duration, Instant};

use bytes::Buf;

use super::DeviceIo as Tty;
use crate::hub::{DeviceOp, Hub, LineAnswer, LineChange, Signal, SignalAnswer, WriteQueue};
use crate::line::LineSettings;
use crate::modem::ModemOutputs;
use crate::pace::{Steps, TokenBucket};
use crate::timer::PreciseTimer;
use crate::traffic::{ClientRef, Event};

/// How often an unpaced writer looks again at an output queue over its
/// lead: it cannot know the rate the far end drains it at.
const UNPACED_DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(1);

#[derive(Debug)]
pub(crate) struct DeviceWriter {
    queue: WriteQueue,
    pending: Option<DeviceOp>,
    /// The line settings in force: the device is (re)opened with them.
    line: LineSettings,
    pacing: bool,
    /// The device's lack of modem lines has been logged.
    warned_signals: bool,
    /// A client has set DTR or RTS: a reconnected remote port is given
    /// them again (see [`lines_set`](Self::lines_set)).
    lines_set: bool,
    pacer: TokenBucket,
    /// How far the writer runs ahead of the line, and how much it writes
    /// per wake-up (see [`Steps`]).
    steps: Steps,
    char_time: Duration,
    /// The last step finished a chunk: the next chunk, if it is already
    /// queued, spends what is left of the grant in the same wake-up.
    carry: bool,
    /// The pacer's sleeps; made at the first paced write, so an idle or
    /// unpaced port holds no descriptor for it.
    timer: Option<PreciseTimer>,
}

impl DeviceWriter {
    /// A writer pacing at `line`'s rate, or, with `pacing` off, relying on
    /// the driver alone (its output-queue count and blocking writes).
    pub(crate) fn new(queue: WriteQueue, line: &LineSettings, pacing: bool) -> Self {
        let mut w = Self {
            queue,
            pending: None,
            line: *line,
            pacing,
            warned_signals: false,
            lines_set: false,
            pacer: TokenBucket::unlimited(),
            steps: Steps { step: 1, lead: 1 },
            char_time: Duration::ZERO,
            carry: false,
            timer: None,
        };
        w.pace(line);
        w
    }

    /// Paces at `line`'s rate from now on.
    fn pace(&mut self, line: &LineSettings) {
        self.line = *line;
        self.steps = Steps::for_rate(line.bytes_per_sec());
        self.pacer = if self.pacing {
            TokenBucket::new(line.bytes_per_sec(), self.steps.lead, Instant::now())
        } else {
            TokenBucket::unlimited()
        };
        self.char_time = Duration::from_secs_f64(1.0 / line.bytes_per_sec());
    }

    /// The line settings in force.
    pub(crate) fn line(&self) -> &LineSettings {
        &self.line
    }

    /// The DTR and RTS state in force, if a client has set either: what a
    /// reconnected remote port is sent, so that its lines are what serialhub
    /// answers its clients. `None` until then, so that connecting leaves a
    /// remote port's lines alone (a server such as esptool's takes DTR on
    /// as the cue to reset its board).
    pub(crate) fn lines_set(&self, hub: &Hub) -> Option<ModemOutputs> {
        self.lines_set.then(|| hub.settings.outputs())
    }

    /// Writes queued chunks until the device fails. Cancel safe.
    pub(crate) async fn run(&mut self, tty: &Tty, hub: &Hub) -> std::io::Error {
        loop {
            if self.pending.is_none() {
                match self.queue.recv().await {
                    Some(c) => self.pending = Some(c),
                    // The hub owns the sender, so this only happens if the
                    // hub is gone; park rather than spin.
                    None => std::future::pending::<()>().await,
                }
            }
            if let Err(e) = self.step(tty, hub).await {
                return e;
            }
        }
    }

    /// Writes everything already queued, then returns. Cancel safe.
    pub(crate) async fn drain(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<()> {
        loop {
            if self.pending.is_none() {
                match self.queue.try_recv() {
                    Ok(c) => self.pending = Some(c),
                    Err(_) => return Ok(()),
                }
            }
            self.step(tty, hub).await?;
        }
    }

    /// Writes part of the pending chunk, or applies the pending change.
    async fn step(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<()> {
        if self.pending.as_ref().is_some_and(DeviceOp::orphaned) {
            self.drop_orphan(hub);
            return Ok(());
        }
        match self.pending.as_ref() {
            Some(DeviceOp::Write(_)) => self.write_step(tty, hub).await,
            Some(DeviceOp::Line(_)) => self.change_line(tty, hub).await,
            Some(DeviceOp::Signal(_)) => self.change_signal(tty, hub).await,
            None => Ok(()),
        }
    }

    /// Drops the pending change: its client left before it was applied.
    /// Its asker, if still waiting, is told the state in force.
    fn drop_orphan(&mut self, hub: &Hub) {
        let left = "the client left before the device applied it".to_owned();
        hub.stats
            .orphans_dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.pending.take() {
            Some(DeviceOp::Line(change)) => {
                tracing::debug!(line = %change.line, "dropped a departed client's line change");
                if let Some(answer) = change.answer {
                    let in_force = self.line;
                    let _ = answer.send(LineAnswer {
                        in_force,
                        refused: Some(left),
                    });
                }
            }
            Some(DeviceOp::Signal(change)) => {
                tracing::debug!(signal = %change.signal, on = change.on,
                    "dropped a departed client's modem-line change");
                // Asked for, so logged: a reset that never happened shows.
                hub.traffic().record(Event::Signal {
                    signal: change.signal,
                    on: change.on,
                    client: change.by.clone(),
                    refused: Some(left.clone()),
                });
                if let Some(answer) = change.answer {
                    let outputs = hub.settings.outputs();
                    let on = match change.signal {
                        Signal::Dtr => outputs.dtr,
                        Signal::Rts => outputs.rts,
                        Signal::Break => outputs.brk,
                    };
                    let _ = answer.send(SignalAnswer {
                        on,
                        refused: Some(left),
                    });
                }
            }
            other => self.pending = other,
        }
    }

    /// Waits until the line has sent every byte written so far.
    async fn wait_idle(&mut self, tty: &Tty) -> std::io::Result<()> {
        self.wait_sent(tty, 0).await?;
        let idle = self.pacer.until_empty(Instant::now());
        if !idle.is_zero() {
            tokio::time::sleep(idle).await;
        }
        Ok(())
    }

    /// The pending change, once the bytes queued before it are on the wire;
    /// `None` if there is none, or if its client left meanwhile (it is
    /// dropped then, and counted).
    async fn due(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<Option<&DeviceOp>> {
        self.wait_idle(tty).await?;
        if self.pending.as_ref().is_some_and(DeviceOp::orphaned) {
            self.drop_orphan(hub);
        }
        Ok(self.pending.as_ref())
    }

    /// Sets the pending modem output (or break) once the bytes before it are
    /// out, and records it in the traffic log. A device without modem lines
    /// keeps the state all the same (a client reads back what it set) and
    /// the answer and the record say why it is not on a wire. The request
    /// is sent whatever state is believed in force.
    ///
    /// The change stays pending until the device has taken it, so a device
    /// lost meanwhile (a remote port's connection) gets it when reopened.
    async fn change_signal(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<()> {
        let Some(DeviceOp::Signal(change)) = self.due(tty, hub).await? else {
            return Ok(());
        };
        let refused = match tty.set_signal(change.signal, change.on).await {
            Ok(()) => None,
            Err(e) if super::io::connection_lost(&e) => return Err(e),
            Err(e) => {
                if !self.warned_signals {
                    self.warned_signals = true;
                    tracing::warn!(error = %e, "the device has no modem lines: DTR, RTS and break \
                    requests are answered and kept, but change nothing on a wire");
                }
                Some(format!("the device has no modem lines ({e})"))
            }
        };
        let Some(DeviceOp::Signal(change)) = self.pending.take() else {
            return Ok(());
        };
        self.lines_set |= change.signal != Signal::Break;
        let mut outputs = hub.settings.outputs();
        match change.signal {
            Signal::Dtr => outputs.dtr = change.on,
            Signal::Rts => outputs.rts = change.on,
            Signal::Break => outputs.brk = change.on,
        }
        hub.settings.set_outputs(outputs);
        if let Some(c) = &change.by {
            hub.changers.changed(c.id, &c.name);
        }
        // After the bytes before it, before those after it (issue 19: a
        // reset sequence is read from the log); refused ones too, since the
        // client asked and a board that did not reset needs explaining.
        hub.traffic().record(Event::Signal {
            signal: change.signal,
            on: change.on,
            client: change.by.clone(),
            refused: refused.clone(),
        });
        // A loopback plug (or a device wired back) answers at once.
        tty.publish_state(&hub.settings);
        tracing::debug!(signal = %change.signal, on = change.on, "modem output set");
        if let Some(answer) = change.answer {
            let _ = answer.send(SignalAnswer {
                on: change.on,
                refused,
            });
        }
        Ok(())
    }

    /// Applies the pending line change once the line has sent every byte
    /// written before it, and tells the asker the settings in force.
    async fn change_line(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<()> {
        let Some(DeviceOp::Line(change)) = self.due(tty, hub).await? else {
            return Ok(());
        };
        let line = change.line;
        // Kept pending until the device has answered, as in `change_signal`.
        let applied = match line == self.line {
            true => None,
            false => Some(tty.set_line(&line, &self.line).await),
        };
        let Some(DeviceOp::Line(change)) = self.pending.take() else {
            return Ok(());
        };
        let LineChange { by, answer, .. } = change;
        let who = by.as_ref().map_or_else(
            || "the operator".to_owned(),
            |c| format!("client #{} {}", c.id, c.name),
        );
        let refused = match applied {
            None => None,
            Some(Ok(())) => {
                tracing::info!(from = %self.line, to = %line, by = %who, "line settings changed");
                self.pace(&line);
                hub.line_applied(line);
                let text = super::settings_text(&line);
                let text = match &by {
                    Some(c) => format!("{text} by #{} {}", c.id, c.name),
                    None => format!("{text} by operator"),
                };
                hub.traffic().record(Event::Settings(text));
                if let Some(c) = &by {
                    hub.changers.changed(c.id, &c.name);
                }
                None
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, by = %who, in_force = %self.line,
                    "line settings refused by the device");
                Some(e)
            }
        };
        if let Some(answer) = answer {
            let _ = answer.send(LineAnswer {
                in_force: self.line,
                refused,
            });
        }
        Ok(())
    }

    /// Waits while the driver's output queue holds more than `most` bytes.
    /// A driver that does not count it (a pty) is not asked.
    async fn wait_sent(&self, tty: &Tty, most: usize) -> std::io::Result<()> {
        if !tty.reports_output_queue() {
            return Ok(());
        }
        loop {
            let queued = tty.output_queue()?;
            if queued <= most {
                return Ok(());
            }
            let over = u32::try_from(queued - most).unwrap_or(u32::MAX);
            let mut wait = self.char_time.saturating_mul(over);
            if !self.pacing {
                // Unpaced, the queue drains at whatever rate the far end
                // takes it, not the line's: a remote port's 64 KiB at 9600
                // baud's character time was a 68 s sleep.
                wait = wait.min(UNPACED_DRAIN_POLL);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Writes part of the pending chunk, paced, then, where the driver counts
    /// its output queue, lets it drain to one step short of the lead: on a
    /// UART the driver's queue paces the writer (and catches a line slowed
    /// by flow control), one wake-up per step.
    async fn write_step(&mut self, tty: &Tty, hub: &Hub) -> std::io::Result<()> {
        let Some(DeviceOp::Write(chunk)) = self.pending.as_mut() else {
            return Ok(());
        };
        // One wake-up per step of line time however the bytes were cut into
        // chunks (issue 12): a chunk's tail shorter than a step, with more
        // queued behind it, waits for a whole step, and what it leaves of
        // the grant goes to the chunks after it at once.
        let len = chunk.data.len();
        let carried = match std::mem::take(&mut self.carry) {
            true => self.pacer.grant(Instant::now(), len, 1).ok(),
            false => None,
        };
        let step = self.steps.step;
        let granted = match carried {
            Some(n) => n,
            None => {
                let want = match len < step && !self.queue.is_empty() {
                    true => step,
                    false => len,
                };
                // An unpaced writer never sleeps here: no timer for it.
                let timer = match self.pacing {
                    true => Some(&*self.timer.get_or_insert_with(PreciseTimer::new)),
                    false => None,
                };
                self.pacer.take_on(timer, want, step).await
            }
        };
        let written = match tty.write(&chunk.data[..granted.min(len)]).await {
            Ok(n) => n,
            Err(e) => {
                self.pacer.refund(granted);
                return Err(e);
            }
        };
        self.pacer.refund(granted - written);
        self.carry = written == len;
        // Built only for a log that takes it: an Arc clone and a slice per
        // write, for nothing, otherwise.
        if written > 0 && hub.traffic().is_enabled() {
            let client = ClientRef {
                id: chunk.client,
                name: chunk.client_name.clone(),
            };
            let bytes = chunk.data.slice(..written);
            hub.traffic().record(Event::Tx(client, bytes));
        }
        chunk.data.advance(written);
        chunk.release(written);
        super::count_tx(hub, written);
        if chunk.data.is_empty() {
            self.pending = None;
        }
        self.wait_sent(tty, self.steps.lead - self.steps.step).await
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use bytes::Bytes;

    use super::*;
    use crate::device::tty::Tty as PtyTty;
    use crate::hub::{HubConfig, SlowReaderPolicy};

    /// Issue 12: a paced writer wakes once per step of line time, however
    /// small the chunks clients send: 7-byte chunks at 9600 baud go out
    /// a step (48 bytes) at a time, whole and in order, not a write per
    /// chunk.
    #[tokio::test]
    async fn issue12_small_chunks_go_out_a_step_at_a_time() {
        let line = LineSettings::with_baud(9600);
        let pty = nix::pty::openpty(None, None).unwrap();
        let name = nix::unistd::ttyname(&pty.slave).unwrap();
        let io = super::super::DeviceIo::Tty(PtyTty::open(&name, &line).unwrap());
        let (hub, queue) = Hub::new(HubConfig::for_tests(SlowReaderPolicy::Block, 1 << 16, 4096));
        let mut writer = DeviceWriter::new(queue, &line, true);
        let (chunks, size) = (100usize, 7usize);
        let total = chunks * size;
        let sent: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let client = hub.attach("small");
        let data = sent.clone();
        let submitter = tokio::spawn(async move {
            for piece in data.chunks(size) {
                let permit = client.reserve_exact(piece.len()).await.unwrap();
                client
                    .submit(Bytes::copy_from_slice(piece), permit)
                    .await
                    .unwrap();
            }
            client
        });
        // The submitter keeps the (bounded) queue topped up meanwhile.
        let master = pty.master;
        let reader = tokio::task::spawn_blocking(move || {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            // Reads more than 3 ms after the one before start a burst: the
            // writes of one wake-up come microseconds apart, steps 50 ms.
            let (mut got, mut bursts) = (Vec::new(), 0);
            let mut last = std::time::Instant::now() - Duration::from_secs(1);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let mut buf = [0u8; 4096];
            while got.len() < total && std::time::Instant::now() < deadline {
                let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::from(100u16)).unwrap() == 0 {
                    continue;
                }
                let n = nix::unistd::read(&master, &mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                if last.elapsed() > Duration::from_millis(3) {
                    bursts += 1;
                }
                last = std::time::Instant::now();
            }
            (got, bursts)
        });
        let (got, bursts) = tokio::select! {
            e = writer.run(&io, &hub) => panic!("the writer stopped: {e}"),
            r = reader => r.unwrap(),
        };
        assert_eq!(got, sent, "every byte, in order");
        // 700 bytes are about 15 steps of 48 (the first, a full lead of
        // 68, at once); a wake-up per chunk would be 100, 7 ms apart.
        assert!(
            bursts <= 40,
            "{bursts} bursts of writes for {chunks} chunks"
        );
        drop(submitter.await.unwrap());
    }
}
