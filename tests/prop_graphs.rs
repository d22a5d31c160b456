//! Random task graphs (fan-in, fan-out, shared refs, failing nodes, plain and
//! async bodies) give the same results as a plain sequential evaluation.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rustyray::prelude::*;

#[rustyray::remote]
fn node(id: usize, constant: i64, fails: bool, a: i64, b: i64, c: i64) -> Result<i64, String> {
    if fails { Err(format!("node {id} failed")) } else { Ok(constant.wrapping_add(a).wrapping_add(b).wrapping_add(c)) }
}

#[rustyray::remote]
async fn node_async(id: usize, constant: i64, fails: bool, a: i64, b: i64, c: i64) -> Result<i64, String> {
    tokio::task::yield_now().await;
    if fails { Err(format!("node {id} failed")) } else { Ok(constant.wrapping_add(a).wrapping_add(b).wrapping_add(c)) }
}

#[derive(Clone, Debug)]
struct Node {
    inputs: Vec<usize>,
    constant: i64,
    fails: bool,
    is_async: bool,
    put_first: bool,
}

fn graph() -> impl Strategy<Value = Vec<Node>> {
    (1usize..40).prop_flat_map(|n| {
        let nodes: Vec<_> = (0..n)
            .map(|i| {
                let inputs =
                    if i == 0 { Just(Vec::new()).boxed() } else { proptest::collection::vec(0..i, 0..=3).boxed() };
                (inputs, -1000i64..1000, prop::bool::weighted(0.1), any::<bool>(), prop::bool::weighted(0.2)).prop_map(
                    |(inputs, constant, fails, is_async, put_first)| Node {
                        inputs,
                        constant,
                        fails,
                        is_async,
                        put_first,
                    },
                )
            })
            .collect();
        nodes
    })
}

/// What a node evaluates to: its value, or the nodes its failure may come from.
#[derive(Debug, PartialEq)]
enum Expected {
    Value(i64),
    FailedFrom(BTreeSet<usize>),
}

fn evaluate(nodes: &[Node]) -> Vec<Expected> {
    let mut out: Vec<Expected> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let failed: BTreeSet<usize> = node
            .inputs
            .iter()
            .filter_map(|&input| match &out[input] {
                Expected::FailedFrom(origins) => Some(origins.iter().copied()),
                Expected::Value(_) => None,
            })
            .flatten()
            .collect();
        let expected = if !failed.is_empty() {
            Expected::FailedFrom(failed)
        } else if node.fails {
            Expected::FailedFrom(BTreeSet::from([i]))
        } else {
            let sum = node.inputs.iter().fold(node.constant, |acc, &input| match out[input] {
                Expected::Value(v) => acc.wrapping_add(v),
                Expected::FailedFrom(_) => acc,
            });
            Expected::Value(sum)
        };
        out.push(expected);
    }
    out
}

async fn run(nodes: &[Node]) -> Vec<Result<i64, Error>> {
    let mut refs: Vec<ObjectRef<i64>> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let arg = |k: usize| -> rustyray::TaskArg<i64> {
            match node.inputs.get(k) {
                Some(&input) => (&refs[input]).into(),
                None => 0i64.into(),
            }
        };
        let (a, b, c) = (arg(0), arg(1), arg(2));
        let r = if node.put_first && node.inputs.is_empty() && !node.fails {
            rustyray::put(node.constant)
        } else if node.is_async {
            node_async::remote(i, node.constant, node.fails, a, b, c)
        } else {
            node::remote(i, node.constant, node.fails, a, b, c)
        };
        refs.push(r);
    }
    let mut results = Vec::with_capacity(refs.len());
    for r in &refs {
        results.push(r.get().await);
    }
    results
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_match_sequential_evaluation(nodes in graph()) {
        let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let results = tokio.block_on(async {
            let rt = Runtime::builder().num_cpus(2).build().unwrap();
            let results = rt.scope(run(&nodes)).await;
            rt.shutdown().await;
            results
        });
        let expected = evaluate(&nodes);
        for (i, (actual, expected)) in results.iter().zip(&expected).enumerate() {
            match (actual, expected) {
                (Ok(v), Expected::Value(e)) => prop_assert_eq!(v, e, "node {}", i),
                (Err(Error::TaskFailed { message, .. }), Expected::FailedFrom(origins)) => {
                    let origin: usize = message.trim_start_matches("node ").trim_end_matches(" failed").parse().unwrap();
                    prop_assert!(origins.contains(&origin), "node {} failed from {} not in {:?}", i, origin, origins);
                }
                (actual, expected) => prop_assert!(false, "node {}: got {:?}, expected {:?}", i, actual, expected),
            }
        }
    }
}
