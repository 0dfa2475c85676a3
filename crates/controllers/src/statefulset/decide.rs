//! The StatefulSet controller's decisions, without IO: given the state of
//! each ordinal's pod, which pod to create or delete next (upstream's
//! `updateStatefulSet` ordering for `OrderedReady` and `Parallel`, scale
//! down from the highest ordinal, rolling updates from the highest ordinal
//! down to the partition within `maxUnavailable`).

/// One ordinal's pod, as the controller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PodState {
    /// No pod has this ordinal.
    Missing,
    /// Created, not Running and Ready yet.
    Starting,
    /// Running and Ready.
    Ready,
    /// Failed or Succeeded: to be deleted and made again.
    Finished,
    /// Being deleted.
    Terminating,
}

/// One ordinal and its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) ordinal: i32,
    pub(crate) state: PodState,
    /// Made from the update revision.
    pub(crate) updated: bool,
}

/// What to do to one ordinal's pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Create(i32),
    Delete(i32),
}

/// How the set is updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    OnDelete,
    /// Ordinal indexes below `partition` keep their revision; at most
    /// `max_unavailable` pods may be unavailable while rolling.
    Rolling {
        partition: usize,
        max_unavailable: usize,
    },
}

/// The actions of one sync. `replicas`: the slots for the wanted
/// ordinals, ascending; `condemned`: pods whose ordinal is out of range
/// (any order); `ordered`: `OrderedReady` (one at a time, each waiting for
/// its predecessors to be Running and Ready).
pub(crate) fn plan(
    replicas: &[Slot],
    condemned: &[Slot],
    ordered: bool,
    update: Update,
) -> Vec<Action> {
    let mut actions = Vec::new();
    // Make every wanted ordinal exist, lowest first.
    for slot in replicas {
        match slot.state {
            PodState::Finished => {
                actions.push(Action::Delete(slot.ordinal));
                if ordered {
                    return actions;
                }
            }
            PodState::Missing => {
                actions.push(Action::Create(slot.ordinal));
                if ordered {
                    return actions;
                }
            }
            PodState::Terminating | PodState::Starting if ordered => return actions,
            _ => {}
        }
    }
    // Scale down, highest ordinal first.
    let mut condemned = condemned.to_vec();
    condemned.sort_by_key(|s| std::cmp::Reverse(s.ordinal));
    let first_unhealthy = replicas
        .iter()
        .chain(&condemned)
        .filter(|s| s.state != PodState::Ready)
        .map(|s| s.ordinal)
        .next();
    for slot in &condemned {
        match slot.state {
            PodState::Missing => {}
            PodState::Terminating => {
                if ordered {
                    return actions;
                }
            }
            _ => {
                // In order, an unhealthy pod other than this one blocks.
                if ordered && first_unhealthy.is_some_and(|o| o != slot.ordinal) {
                    return actions;
                }
                actions.push(Action::Delete(slot.ordinal));
                if ordered {
                    return actions;
                }
            }
        }
    }
    if ordered && !actions.is_empty() {
        return actions;
    }
    // Roll, highest ordinal first, down to the partition.
    let Update::Rolling {
        partition,
        max_unavailable,
    } = update
    else {
        return actions;
    };
    let busy: Vec<i32> = actions
        .iter()
        .map(|a| match a {
            Action::Create(o) | Action::Delete(o) => *o,
        })
        .collect();
    let mut unavailable = replicas
        .iter()
        .filter(|s| s.state != PodState::Ready)
        .count();
    for slot in replicas.iter().skip(partition).rev() {
        if busy.contains(&slot.ordinal) {
            continue;
        }
        let old = !slot.updated && matches!(slot.state, PodState::Starting | PodState::Ready);
        if old && slot.state != PodState::Ready {
            // Unavailable already: replacing it costs nothing.
            actions.push(Action::Delete(slot.ordinal));
        } else if old && unavailable < max_unavailable.max(1) {
            actions.push(Action::Delete(slot.ordinal));
            unavailable += 1;
        }
    }
    actions
}

/// Which revision a new pod at ordinal index `index` is made from: the
/// current one below a rolling update's partition, else the update one.
pub(crate) fn uses_update_revision(index: usize, update: Update) -> bool {
    match update {
        Update::Rolling { partition, .. } => index >= partition,
        Update::OnDelete => true,
    }
}

/// The ordinal in a pod's name `<set>-<ordinal>`, if it is one of `set`'s.
pub(crate) fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || rest.starts_with('+') || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse::<i32>().ok().filter(|o| *o >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Create, Delete};
    use PodState::{Finished, Missing, Ready, Starting, Terminating};

    fn slots(states: &[(PodState, bool)]) -> Vec<Slot> {
        states
            .iter()
            .zip(0..)
            .map(|(&(state, updated), ordinal)| Slot {
                ordinal,
                state,
                updated,
            })
            .collect()
    }

    fn at(ordinal: i32, state: PodState) -> Slot {
        Slot {
            ordinal,
            state,
            updated: true,
        }
    }

    /// Each ordinal's (state, updated), and the actions wanted.
    type Case = (&'static [(PodState, bool)], Vec<Action>);

    const ROLL: Update = Update::Rolling {
        partition: 0,
        max_unavailable: 1,
    };

    #[test]
    fn ordered_ready_creates_one_at_a_time_and_waits() {
        let cases: &[Case] = &[
            (
                &[(Missing, true), (Missing, true), (Missing, true)],
                vec![Create(0)],
            ),
            (
                &[(Starting, true), (Missing, true), (Missing, true)],
                vec![],
            ),
            (
                &[(Ready, true), (Missing, true), (Missing, true)],
                vec![Create(1)],
            ),
            (
                &[(Ready, true), (Ready, true), (Missing, true)],
                vec![Create(2)],
            ),
            (
                &[(Terminating, true), (Ready, true), (Missing, true)],
                vec![],
            ),
            (
                &[(Ready, true), (Finished, true), (Missing, true)],
                vec![Delete(1)],
            ),
            (&[(Ready, true), (Ready, true), (Ready, true)], vec![]),
        ];
        for (states, want) in cases {
            assert_eq!(&plan(&slots(states), &[], true, ROLL), want, "{states:?}");
        }
    }

    #[test]
    fn parallel_creates_and_replaces_all_at_once() {
        let replicas = slots(&[
            (Starting, true),
            (Missing, true),
            (Finished, true),
            (Missing, true),
        ]);
        assert_eq!(
            plan(&replicas, &[], false, ROLL),
            vec![Create(1), Delete(2), Create(3)]
        );
        let condemned = [at(5, Ready), at(4, Starting), at(6, Terminating)];
        assert_eq!(
            plan(&slots(&[(Ready, true)]), &condemned, false, ROLL),
            vec![Delete(5), Delete(4)]
        );
    }

    #[test]
    fn ordered_scale_down_removes_the_highest_first_one_at_a_time() {
        let replicas = slots(&[(Ready, true)]);
        let cases: &[(Vec<Slot>, Vec<Action>)] = &[
            (vec![at(1, Ready), at(2, Ready)], vec![Delete(2)]),
            (vec![at(1, Ready), at(2, Terminating)], vec![]),
            (vec![at(1, Ready)], vec![Delete(1)]),
            // The highest is unhealthy: it may go.
            (vec![at(1, Ready), at(2, Starting)], vec![Delete(2)]),
            // Another pod is unhealthy: wait.
            (vec![at(1, Starting), at(2, Ready)], vec![]),
        ];
        for (condemned, want) in cases {
            assert_eq!(
                &plan(&replicas, condemned, true, ROLL),
                want,
                "{condemned:?}"
            );
        }
        let unhealthy = slots(&[(Starting, true)]);
        assert_eq!(plan(&unhealthy, &[at(1, Ready)], true, ROLL), vec![]);
    }

    #[test]
    fn rolling_updates_go_down_from_the_highest_to_the_partition() {
        let old3 = slots(&[(Ready, false), (Ready, false), (Ready, false)]);
        assert_eq!(plan(&old3, &[], true, ROLL), vec![Delete(2)]);
        let partitioned = Update::Rolling {
            partition: 1,
            max_unavailable: 1,
        };
        let cases: &[Case] = &[
            (
                &[(Ready, false), (Ready, false), (Ready, false)],
                vec![Delete(2)],
            ),
            (&[(Ready, false), (Ready, false), (Starting, true)], vec![]),
            (
                &[(Ready, false), (Ready, false), (Ready, true)],
                vec![Delete(1)],
            ),
            (&[(Ready, false), (Ready, true), (Ready, true)], vec![]),
        ];
        for (states, want) in cases {
            assert_eq!(
                &plan(&slots(states), &[], true, partitioned),
                want,
                "{states:?}"
            );
        }
        let wide = Update::Rolling {
            partition: 0,
            max_unavailable: 2,
        };
        assert_eq!(plan(&old3, &[], false, wide), vec![Delete(2), Delete(1)]);
        // An old pod that is not ready goes at once.
        let stuck = slots(&[(Ready, false), (Starting, false), (Ready, false)]);
        assert_eq!(plan(&stuck, &[], false, ROLL), vec![Delete(1)]);
        let stuck = slots(&[(Ready, false), (Ready, false), (Starting, false)]);
        assert_eq!(plan(&stuck, &[], false, wide), vec![Delete(2), Delete(1)]);
        assert_eq!(plan(&old3, &[], true, Update::OnDelete), vec![]);
    }

    #[test]
    fn new_pods_take_the_revision_of_their_side_of_the_partition() {
        let update = Update::Rolling {
            partition: 2,
            max_unavailable: 1,
        };
        assert!(!uses_update_revision(1, update));
        assert!(uses_update_revision(2, update));
        assert!(uses_update_revision(0, Update::OnDelete));
    }

    #[test]
    fn ordinals_come_from_names() {
        let cases = [
            ("web-0", Some(0)),
            ("web-12", Some(12)),
            ("web-012", None),
            ("web-", None),
            ("web-x", None),
            ("web-1-0", None),
            ("webs-1", None),
            ("web--1", None),
        ];
        for (name, want) in cases {
            assert_eq!(ordinal_of("web", name), want, "{name}");
        }
    }
}
