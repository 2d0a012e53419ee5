//! Mixing more than two channels down to stereo (rule: see the [`decode`](super) module docs).

use symphonia::core::audio::{Channels, Position};
use symphonia::core::formats::Track;

/// Side of a channel for downmixing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Left,
    Right,
    Centre,
    Lfe,
}

fn channel_sides(n: usize, channels: Option<&Channels>) -> Vec<Side> {
    const LEFT: u64 = Position::FRONT_LEFT.bits()
        | Position::REAR_LEFT.bits()
        | Position::FRONT_LEFT_CENTER.bits()
        | Position::SIDE_LEFT.bits()
        | Position::TOP_FRONT_LEFT.bits()
        | Position::TOP_REAR_LEFT.bits()
        | Position::TOP_SIDE_LEFT.bits()
        | Position::BOTTOM_FRONT_LEFT.bits()
        | Position::FRONT_LEFT_WIDE.bits();
    const RIGHT: u64 = Position::FRONT_RIGHT.bits()
        | Position::REAR_RIGHT.bits()
        | Position::FRONT_RIGHT_CENTER.bits()
        | Position::SIDE_RIGHT.bits()
        | Position::TOP_FRONT_RIGHT.bits()
        | Position::TOP_REAR_RIGHT.bits()
        | Position::TOP_SIDE_RIGHT.bits()
        | Position::BOTTOM_FRONT_RIGHT.bits()
        | Position::FRONT_RIGHT_WIDE.bits();
    const LFE: u64 = Position::LFE1.bits() | Position::LFE2.bits();
    if let Some(Channels::Positioned(pos)) = channels {
        let bits = pos.bits();
        // Planes are in canonical order = ascending bit order of the position mask.
        let sides: Vec<Side> = (0..64u32)
            .map(|b| 1u64 << b)
            .filter(|m| bits & m != 0)
            .map(|m| {
                if m & LEFT != 0 {
                    Side::Left
                } else if m & RIGHT != 0 {
                    Side::Right
                } else if m & LFE != 0 {
                    Side::Lfe
                } else {
                    Side::Centre
                }
            })
            .collect();
        if sides.len() == n && sides.iter().any(|s| *s != Side::Lfe) {
            return sides;
        }
    }
    (0..n)
        .map(|i| if i % 2 == 0 { Side::Left } else { Side::Right })
        .collect()
}

/// Mixes >2 planes to stereo (see module docs). Consumes the input planes one at a time so peak
/// memory stays close to input + output.
pub(super) fn downmix_to_stereo(planes: Vec<Vec<f32>>, track: &Track) -> Vec<Vec<f32>> {
    let n = planes.len();
    let len = planes.first().map_or(0, Vec::len);
    let layout = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .and_then(|a| a.channels.as_ref());
    let sides = channel_sides(n, layout);
    let n_left = sides
        .iter()
        .filter(|s| matches!(s, Side::Left | Side::Centre))
        .count()
        .max(1);
    let n_right = sides
        .iter()
        .filter(|s| matches!(s, Side::Right | Side::Centre))
        .count()
        .max(1);
    let (gl, gr) = (1.0 / n_left as f32, 1.0 / n_right as f32);
    let mut left = vec![0.0f32; len];
    let mut right = vec![0.0f32; len];
    for (plane, side) in planes.into_iter().zip(sides) {
        let (to_l, to_r) = match side {
            Side::Left => (true, false),
            Side::Right => (false, true),
            Side::Centre => (true, true),
            Side::Lfe => (false, false),
        };
        for (i, s) in plane.iter().enumerate() {
            if to_l {
                left[i] += s * gl;
            }
            if to_r {
                right[i] += s * gr;
            }
        }
    }
    vec![left, right]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_sides_for_5_1() {
        let ch = Channels::Positioned(
            Position::FRONT_LEFT
                | Position::FRONT_RIGHT
                | Position::FRONT_CENTER
                | Position::LFE1
                | Position::REAR_LEFT
                | Position::REAR_RIGHT,
        );
        let s = channel_sides(6, Some(&ch));
        assert_eq!(
            s,
            vec![
                Side::Left,
                Side::Right,
                Side::Centre,
                Side::Lfe,
                Side::Left,
                Side::Right
            ]
        );
        assert_eq!(
            channel_sides(3, None),
            vec![Side::Left, Side::Right, Side::Left]
        );
    }
}
