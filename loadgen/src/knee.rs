//! The stress ladder's search for the knee: which rung runs next, given how the last ones went.
//!
//! Up the ladder until a rung breaks; a rung that breaks is held once more and its break counts
//! only if it breaks again, since one stall (an fsync, a throttled CPU period) in a short rung
//! is not a knee. Under the open model the search then halves the gap between the last rung that
//! held and the first that broke until they are within [`KNEE_WITHIN`]; users (the closed
//! model) stay on the ladder's own rungs.

/// Open model: the knee is narrowed until the rung that broke is within this factor of the
/// rung that held.
pub const KNEE_WITHIN: f64 = 1.05;

/// Where the ladder stands.
#[derive(Debug, Clone)]
pub struct KneeSearch {
    ladder: std::vec::IntoIter<f64>,
    narrow: bool,
    held: Option<f64>,
    broke: Option<f64>,
    /// A rung that broke once, to be held again.
    again: Option<f64>,
}

/// What a rung's result did to the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// Every SLO held.
    Held,
    /// Broke once: the same rung runs again.
    BrokeOnce,
    /// Broke twice in a row: the break counts.
    Broke,
}

impl KneeSearch {
    /// A search up `ladder`'s rungs; `narrow` halves the gap after the first counted break.
    pub fn new(ladder: Vec<f64>, narrow: bool) -> Self {
        Self {
            ladder: ladder.into_iter(),
            narrow,
            held: None,
            broke: None,
            again: None,
        }
    }

    /// The next rung to run, or `None` when the knee is found (or the ladder ran out).
    pub fn next_rung(&mut self) -> Option<f64> {
        if let Some(rung) = self.again {
            return Some(rung);
        }
        match (self.held, self.broke) {
            (_, None) => self.ladder.next(),
            (Some(low), Some(high)) if self.narrow && high / low > KNEE_WITHIN => {
                Some((low + high) / 2.0)
            }
            _ => None,
        }
    }

    /// Records how `rung` went.
    pub fn record(&mut self, rung: f64, held: bool) -> Judged {
        if held {
            self.held = Some(rung);
            self.again = None;
            Judged::Held
        } else if self.again.take().is_none() {
            self.again = Some(rung);
            Judged::BrokeOnce
        } else {
            self.broke = Some(rung);
            Judged::Broke
        }
    }

    /// Whether the rung about to run repeats one that broke once.
    pub fn repeating(&self) -> bool {
        self.again.is_some()
    }

    /// The highest rung that held.
    pub fn knee(&self) -> Option<f64> {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a system that holds up to `capacity`, with the rungs in
    /// `stalls` (by run number, from 0) breaking whatever their rate; returns the rungs run.
    fn run(
        ladder: &[f64],
        narrow: bool,
        capacity: f64,
        stalls: &[usize],
    ) -> (Vec<f64>, KneeSearch) {
        let mut search = KneeSearch::new(ladder.to_vec(), narrow);
        let mut ran = Vec::new();
        while let Some(rung) = search.next_rung() {
            let held = rung <= capacity && !stalls.contains(&ran.len());
            ran.push(rung);
            search.record(rung, held);
        }
        (ran, search)
    }

    #[test]
    fn a_rung_that_breaks_once_is_held_again_and_the_ladder_goes_on() {
        let (ran, search) = run(&[5.0, 10.0, 20.0, 40.0, 80.0], false, 40.0, &[2]);
        assert_eq!(ran, [5.0, 10.0, 20.0, 20.0, 40.0, 80.0, 80.0]);
        assert_eq!(search.knee(), Some(40.0));
    }

    #[test]
    fn a_break_counts_when_the_rung_breaks_twice_in_a_row() {
        let (ran, search) = run(&[5.0, 10.0, 20.0, 40.0], false, 10.0, &[]);
        assert_eq!(ran, [5.0, 10.0, 20.0, 20.0]);
        assert_eq!(search.knee(), Some(10.0));
    }

    #[test]
    fn narrowing_halves_the_gap_until_within_five_percent_confirming_each_break() {
        let (ran, search) = run(&[10.0, 20.0, 40.0, 80.0], true, 30.0, &[]);
        // 40 breaks twice; 30 holds; 35 breaks twice; 32.5 breaks twice; 31.25 breaks twice
        // (31.25 / 30 < 1.05 ends it).
        assert_eq!(
            ran,
            [
                10.0, 20.0, 40.0, 40.0, 30.0, 35.0, 35.0, 32.5, 32.5, 31.25, 31.25
            ]
        );
        assert_eq!(search.knee(), Some(30.0));
    }

    #[test]
    fn the_first_rung_breaking_twice_leaves_no_knee() {
        let (ran, search) = run(&[10.0, 20.0], true, 5.0, &[]);
        assert_eq!(ran, [10.0, 10.0]);
        assert_eq!(search.knee(), None);
    }

    #[test]
    fn a_ladder_that_never_breaks_ends_with_its_last_rung_as_the_lower_bound() {
        let (ran, search) = run(&[10.0, 20.0], true, 100.0, &[]);
        assert_eq!(ran, [10.0, 20.0]);
        assert_eq!(search.knee(), Some(20.0));
    }
}
