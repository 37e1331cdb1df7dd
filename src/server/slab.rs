//! The connection table: slots indexed by a small integer, each with a generation that changes
//! whenever the slot is reused, so a stale token or id never reaches a new connection.

/// A connection's identity: its slot and the slot's generation when it was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.index, self.generation)
    }
}

impl ConnId {
    /// Packs the id into a mio token value: the generation above the index.
    pub(crate) fn to_token(self) -> usize {
        ((self.generation as usize) << 32) | self.index as usize
    }

    /// Unpacks a token value made by [`ConnId::to_token`].
    pub(crate) fn from_token(token: usize) -> ConnId {
        ConnId { index: (token & 0xFFFF_FFFF) as u32, generation: (token >> 32) as u32 }
    }
}

enum Slot<T> {
    Occupied { generation: u32, value: T },
    Vacant { generation: u32 },
}

/// A vector of slots with a free list.
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    /// The generation a slot added at the end starts with: above that of every slot given
    /// back by [`Slab::shrink`], so that an id of a slot that was given back never matches
    /// the slot made again in its place.
    fresh_generation: u32,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab { slots: Vec::new(), free: Vec::new(), len: 0, fresh_generation: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores a value made from its id, in a free slot if there is one.
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(ConnId) -> T) -> Option<ConnId> {
        let (index, generation) = match self.free.pop() {
            Some(index) => {
                let slot = self.slots.get(index as usize)?;
                let Slot::Vacant { generation } = slot else { return None };
                (index, generation.wrapping_add(1))
            }
            None => (u32::try_from(self.slots.len()).ok()?, self.fresh_generation),
        };
        let id = ConnId { index, generation };
        let slot = Slot::Occupied { generation, value: make(id) };
        match self.slots.get_mut(index as usize) {
            Some(existing) => *existing = slot,
            None => self.slots.push(slot),
        }
        self.len += 1;
        Some(id)
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        match self.slots.get_mut(id.index as usize)? {
            Slot::Occupied { generation, value } if *generation == id.generation => Some(value),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        match slot {
            Slot::Occupied { generation, .. } if *generation == id.generation => {
                let vacant = Slot::Vacant { generation: id.generation };
                let Slot::Occupied { value, .. } = std::mem::replace(slot, vacant) else {
                    return None;
                };
                self.free.push(id.index);
                self.len -= 1;
                Some(value)
            }
            _ => None,
        }
    }

    /// When at most a quarter of the slots are in use, gives back the vacant slots at the end
    /// and the memory they took (after a storm of connections has left, the table shrinks
    /// instead of holding its largest size for ever). Returns whether memory was given back.
    pub(crate) fn shrink(&mut self) -> bool {
        if self.slots.len() < 64 || self.len * 4 > self.slots.len() {
            return false;
        }
        while let Some(Slot::Vacant { generation }) = self.slots.last() {
            // Generations only grow (they wrap after 2^32 reuses of one slot).
            self.fresh_generation = self.fresh_generation.max(generation.wrapping_add(1));
            self.slots.pop();
        }
        let kept = self.slots.len();
        self.free.retain(|&index| (index as usize) < kept);
        if self.slots.capacity() <= 2 * kept.max(32) {
            return false;
        }
        self.slots.shrink_to(2 * kept.max(16));
        self.free.shrink_to(2 * self.free.len().max(16));
        true
    }

    /// Every stored value with its id, to change.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut T)> + '_ {
        self.slots.iter_mut().enumerate().filter_map(|(index, slot)| match slot {
            Slot::Occupied { generation, value } => {
                Some((ConnId { index: index as u32, generation: *generation }, value))
            }
            Slot::Vacant { .. } => None,
        })
    }

    /// Every stored value with its id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| match slot {
            Slot::Occupied { generation, value } => {
                Some((ConnId { index: index as u32, generation: *generation }, value))
            }
            Slot::Vacant { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slot_gets_a_new_generation() {
        let mut slab = Slab::new();
        let a = slab.insert_with(|_| "a").unwrap();
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert_with(|_| "b").unwrap();
        assert_eq!(a.index, b.index);
        assert_ne!(a, b);
        assert_eq!(slab.get_mut(a), None, "a stale id must not reach the new value");
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get_mut(b).copied(), Some("b"));
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn an_emptied_table_gives_its_slots_back_and_old_ids_stay_stale() {
        let mut slab = Slab::new();
        let ids: Vec<ConnId> = (0..1000).map(|i| slab.insert_with(|_| i).unwrap()).collect();
        // Reuse one high slot a few times, so that its generation is not 0.
        let mut last = ids[999];
        for _ in 0..3 {
            slab.remove(last);
            last = slab.insert_with(|_| 999).unwrap();
        }
        assert!(!slab.shrink(), "full: nothing to give back");
        for &id in &ids[10..999] {
            slab.remove(id);
        }
        slab.remove(last);
        assert!(slab.shrink());
        assert_eq!((slab.len(), slab.slots.len()), (10, 10));
        assert!(slab.slots.capacity() <= 32);
        assert!(slab.free.is_empty());
        // New slots at the end: ids of the slots given back never match them.
        let fresh: Vec<ConnId> = (0..990).map(|i| slab.insert_with(|_| i).unwrap()).collect();
        assert_eq!(fresh[989].index, last.index);
        assert_eq!(slab.get_mut(last), None);
        assert!(ids[10..].iter().all(|&old| fresh.iter().all(|&new| new != old)));
    }

    #[test]
    fn token_round_trip() {
        let id = ConnId { index: 7, generation: 3 };
        assert_eq!(ConnId::from_token(id.to_token()), id);
    }
}
