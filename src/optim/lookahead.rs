//! airbench94's lookahead: an exponential moving average of the weights that is copied
//! back into the network every few steps, with a decay that grows over the run.

use super::{Optimizer, UpdateRule};
use crate::model::Sequential;
use std::collections::BTreeMap;

/// When and how strongly [`Lookahead`] averages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LookaheadSchedule {
    /// Steps before the average starts (airbench: 3 epochs' worth).
    pub start_step: u64,
    /// Average every this many steps (airbench: 5).
    pub every: u64,
    /// Per-step decay base (airbench: 0.95), raised to `every`.
    pub decay_base: f32,
    /// Power of the run's progress that scales the decay (airbench: 3).
    pub decay_pow: f32,
    /// Steps in the whole run.
    pub total_steps: u64,
    /// Steps per epoch: at each epoch's end the network is set to the average.
    pub steps_per_epoch: u64,
}

impl LookaheadSchedule {
    /// The decay `ρ` of the average taken after step `s` (1-based):
    /// `decay_base^every · (s / total)^decay_pow`.
    pub fn decay(&self, s: u64) -> f32 {
        let progress = s as f64 / self.total_steps.max(1) as f64;
        ((self.decay_base as f64).powi(self.every as i32) * progress.powf(self.decay_pow as f64))
            as f32
    }

    /// Whether the average exists after `s` steps: some step in `(start_step, s]` was a
    /// multiple of `every` (the first such step starts it as a copy of the network).
    pub fn active_after(&self, s: u64) -> bool {
        let every = self.every.max(1);
        let first = (self.start_step / every + 1) * every;
        s >= first
    }
}

/// Wraps an optimizer with airbench94's lookahead. After the inner step numbered `s`
/// (counting from 1), when `s > start_step` and `s` is a multiple of `every`: the first
/// time, the average `ē` becomes a copy of every parameter and buffer (batch-norm running
/// statistics too, as airbench averages the whole `state_dict`); later,
/// `ē ← ρ·ē + (1−ρ)·w` with `ρ =` [`LookaheadSchedule::decay`]`(s)`, and then `w ← ē`.
/// At the end of each epoch (`s` a multiple of `steps_per_epoch`), once the average
/// exists, `w ← ē` again (airbench's `update(decay = 1)`).
///
/// The average is optimizer state: [`Optimizer::state`] names it `lookahead.<name>`, so a
/// checkpoint keeps it, and whether it exists follows from the step count.
pub struct Lookahead {
    inner: Box<dyn Optimizer>,
    schedule: LookaheadSchedule,
    average: BTreeMap<String, Vec<f32>>,
    active: bool,
}

impl Lookahead {
    /// `inner` with lookahead on `schedule`.
    pub fn new(inner: Box<dyn Optimizer>, schedule: LookaheadSchedule) -> Self {
        Lookahead {
            inner,
            schedule,
            average: BTreeMap::new(),
            active: false,
        }
    }

    /// Whether the average exists (has been started).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The averaged values of `name`, once started.
    pub fn average(&self, name: &str) -> Option<&[f32]> {
        self.average
            .get(name)
            .map(|v| v.as_slice())
            .filter(|_| self.active)
    }

    /// `ē ← ρ·ē + (1−ρ)·w` (or `ē ← w` when `start`), then `w ← ē`, on every parameter
    /// and buffer.
    fn blend(&mut self, model: &mut Sequential, rho: f32, start: bool) {
        let average = &mut self.average;
        let mut one = |name: &str, w: &mut [f32]| {
            let e = average.entry(name.to_string()).or_default();
            if start || e.len() != w.len() {
                e.clear();
                e.extend_from_slice(w);
                return;
            }
            for (e, w) in e.iter_mut().zip(w.iter_mut()) {
                *e += (1.0 - rho) * (*w - *e);
                *w = *e;
            }
        };
        model.visit_params(&mut |name, p| one(name, p.value));
        model.visit_buffers(&mut |name, b| one(name, b));
    }
}

impl Optimizer for Lookahead {
    fn step(&mut self, model: &mut Sequential) {
        self.inner.step(model);
        let s = self.inner.steps();
        let sch = self.schedule;
        if s > sch.start_step && s.is_multiple_of(sch.every.max(1)) {
            let start = !self.active;
            self.blend(model, sch.decay(s), start);
            self.active = true;
        }
        if self.active && s.is_multiple_of(sch.steps_per_epoch.max(1)) {
            // ρ = 1: the network takes the average as it stands.
            self.blend(model, 1.0, false);
        }
    }

    fn lr(&self) -> f32 {
        self.inner.lr()
    }

    fn set_lr(&mut self, lr: f32) {
        self.inner.set_lr(lr)
    }

    fn lr_scale(&self) -> f32 {
        self.inner.lr_scale()
    }

    fn set_lr_scale(&mut self, scale: f32) {
        self.inner.set_lr_scale(scale)
    }

    fn steps(&self) -> u64 {
        self.inner.steps()
    }

    fn set_steps(&mut self, steps: u64) {
        self.inner.set_steps(steps);
        self.active = self.schedule.active_after(steps);
    }

    fn describe(&self) -> String {
        format!(
            "{} + lookahead (every {} steps from step {})",
            self.inner.describe(),
            self.schedule.every,
            self.schedule.start_step
        )
    }

    fn state(&mut self, model: &Sequential) -> Vec<(String, &mut Vec<f32>)> {
        let mut sizes = Vec::new();
        model.visit_values(&mut |v| sizes.push((v.name.to_string(), v.values.len())));
        for (name, len) in &sizes {
            self.average
                .entry(name.clone())
                .or_default()
                .resize(*len, 0.0);
        }
        let mut out = self.inner.state(model);
        out.extend(
            self.average
                .iter_mut()
                .filter(|(name, _)| sizes.iter().any(|(n, _)| n == *name))
                .map(|(name, v)| (format!("lookahead.{name}"), v)),
        );
        out
    }

    fn rule(&self) -> UpdateRule {
        self.inner.rule()
    }
}
