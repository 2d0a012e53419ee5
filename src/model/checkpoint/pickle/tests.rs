//! The interpreter on pickles without a zip container.

use std::sync::Arc;

use super::*;
use crate::model::checkpoint::test_pickles::{f32_bytes, tensor_pickle};

#[test]
fn strided_offset_and_shared_views() {
    let data = f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    // Transposed 2x3 view of a 3x2 block starting at offset 1: t[i][j] = s[1 + i + 2j].
    let mut p = b"\x80\x02}(X\x01\x00\x00\x00a".to_vec();
    p.extend(tensor_pickle(8, 1, &[2, 3], &[1, 2]));
    p.extend(b"X\x01\x00\x00\x00b");
    // Second view of the same storage key: scalar at offset 7.
    p.extend(tensor_pickle(8, 7, &[], &[]));
    p.extend(b"X\x01\x00\x00\x00c");
    // Broadcast: shape [2, 2], stride [0, 1] from offset 4.
    p.extend(tensor_pickle(8, 4, &[2, 2], &[0, 1]));
    p.extend(b"u.");
    let mut loads = 0;
    let mut load = |k: &str, _min: u64| {
        assert_eq!(k, "0");
        loads += 1;
        Ok::<_, CheckpointError>(Arc::new(data.clone()))
    };
    let v = unpickle(&p, "mem", &mut load).unwrap();
    assert_eq!(loads, 1, "shared storage must be read once");
    let get = |k: &str| {
        v.get(k)
            .and_then(Value::as_tensor)
            .unwrap()
            .to_f32()
            .unwrap()
    };
    assert_eq!(get("a").data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    assert_eq!(get("a").shape, vec![2, 3]);
    assert_eq!(get("b").data, vec![7.0]);
    assert_eq!(get("c").data, vec![4.0, 5.0, 4.0, 5.0]);
}

#[test]
fn resource_caps() {
    // Deep nesting (list inside list ...) must be an error, not a stack overflow.
    let mut p = b"\x80\x02".to_vec();
    p.extend(vec![b']'; 100_000]);
    p.extend(vec![b'a'; 99_999]);
    p.push(b'.');
    let e = unpickle(&p, "deep", &mut |_, _| unreachable!()).unwrap_err();
    assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
    // A list that contains itself.
    let e = unpickle(
        b"\x80\x02]q\x00h\x00a.",
        "cycle",
        &mut |_, _| unreachable!(),
    )
    .unwrap_err();
    assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
    // Exponential sharing (billion laughs).
    let mut p = b"\x80\x02]".to_vec();
    for _ in 0..64 {
        p.extend(b"q\x00h\x00h\x00\x86");
    }
    p.push(b'.');
    let e = unpickle(&p, "laughs", &mut |_, _| unreachable!()).unwrap_err();
    assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
    // A storage claiming more than 4 GiB.
    let p = b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu\x8a\x05\x00\x00\x00\x00\x01tQ.";
    let e = unpickle(p, "huge", &mut |_, _| unreachable!()).unwrap_err();
    assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
    // Broadcast view with an absurd element count.
    let mut p = b"\x80\x02".to_vec();
    p.extend(tensor_pickle(1, 0, &[255, 255, 255, 255], &[0, 0, 0, 0]));
    p.push(b'.');
    let e = unpickle(&p, "bcast", &mut |_, _| Ok(Arc::new(vec![0; 4]))).unwrap_err();
    assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{e}");
}

/// The hostile-input report's "DAG bomb": a list of two references to the previous list,
/// `levels` times over (731 bytes for 60 levels; the tree would hold 2⁶⁰ values).
pub fn dag_bomb(levels: usize) -> Vec<u8> {
    let mut p = b"\x80\x02]q\x00".to_vec();
    for _ in 0..levels {
        // MARK, memo 0 twice, LIST, PUT 0.
        p.extend(b"(h\x00h\x00lq\x00");
    }
    p.push(b'.');
    p
}

#[test]
fn shared_references_are_counted_as_memory_before_the_tree_is_built() {
    let t0 = std::time::Instant::now();
    let e = unpickle(&dag_bomb(60), "dag.pth", &mut |_, _| unreachable!()).unwrap_err();
    assert!(t0.elapsed().as_secs_f64() < 1.0, "{:?}", t0.elapsed());
    let msg = e.to_string();
    assert!(matches!(e, CheckpointError::LimitExceeded { .. }), "{msg}");
    assert!(
        msg.contains("dag.pth") && msg.contains("memory") && msg.contains("256 MiB"),
        "{msg}"
    );
    // 19 levels (2¹⁹ leaves, about 24 MiB as a tree) are legitimate sharing and load.
    let v = unpickle(&dag_bomb(19), "dag.pth", &mut |_, _| unreachable!()).unwrap();
    let mut depth = 0;
    let mut node = &v;
    while let Value::List(items) = node {
        assert!(items.len() == 2 || (items.is_empty() && depth == 19));
        depth += 1;
        match items.first() {
            Some(first) => node = first,
            None => break,
        }
    }
    assert_eq!(depth, 20);
    // 23 levels: 2²³ leaves, about 400 MiB as a tree, over the cap.
    let e = unpickle(&dag_bomb(23), "dag.pth", &mut |_, _| unreachable!()).unwrap_err();
    assert!(e.to_string().contains("memory"), "{e}");
}

#[test]
fn a_shared_object_reached_deeper_than_the_depth_limit_is_refused() {
    // X: a 200-deep chain of lists (memo 1). W: X wrapped in 100 more lists (memo 3). The top
    // list [X, W] reaches X first at depth 1 (fine) and then again at depth 102 (too deep).
    let mut p = b"\x80\x02]q\x01".to_vec();
    for _ in 0..200 {
        p.extend(b"]q\x02h\x01ah\x02q\x01");
    }
    p.extend(b"h\x01q\x03");
    for _ in 0..100 {
        p.extend(b"]q\x04h\x03ah\x04q\x03");
    }
    p.extend(b"(h\x01h\x03l.");
    let e = unpickle(&p, "deep", &mut |_, _| unreachable!()).unwrap_err();
    assert!(e.to_string().contains("nesting depth"), "{e}");
    // X alone, 201 deep, is within the limit.
    let mut ok = p[..p.len() - 7].to_vec();
    ok.extend(b"(h\x01l.");
    assert!(unpickle(&ok, "deep", &mut |_, _| unreachable!()).is_ok());
}

#[test]
fn copying_a_shared_list_again_and_again_is_refused_by_memory() {
    // A list of 100 000 ints (memo 0), then `torch.Size(list)` 2000 times: each call copies
    // the list (1.6 MB), 3.2 GB in all from a 212 KB pickle.
    let mut p = b"\x80\x02(".to_vec();
    p.extend(b"K\x01".repeat(100_000));
    p.extend(b"lq\x00ctorch\nSize\nq\x01");
    p.extend(b"h\x01h\x00\x85R0".repeat(2000));
    p.extend(b"N.");
    let t0 = std::time::Instant::now();
    let e = unpickle(&p, "size.pth", &mut |_, _| unreachable!()).unwrap_err();
    assert!(t0.elapsed().as_secs_f64() < 2.0, "{:?}", t0.elapsed());
    let msg = e.to_string();
    assert!(msg.contains("memory") && msg.contains("256 MiB"), "{msg}");
}
