//! A pipeline's graph as SVG, laid out by the server in columns.
//!
//! Nodes are jobs and resources; edges go from a resource to each job that gets it without
//! `passed`, from a job to each job that gets something `passed` it, and from a job to each
//! resource it puts. Each node's column is the longest path to it (cycles, such as a job that
//! puts the resource that triggers it, are broken where a depth-first walk in declaration order
//! meets them). An edge that would skip columns passes through a waypoint in each column
//! between, which takes a row there like a node, so that no edge crosses a node. Within a
//! column nodes start in declaration order and are then sorted a few times by the mean row of
//! their neighbours (stable, so the same pipeline is always drawn the same way).

use std::fmt::Write as _;

use super::ansi::escape_into;
use crate::events::shorten;

/// A node of the graph, as the page gives it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// `job <name>` or `resource <type.name>`: unique.
    pub(crate) id: String,
    pub(crate) label: String,
    /// The class of its box: `job s-<status>`, `resource`, ...
    pub(crate) class: String,
    /// Where a click leads.
    pub(crate) href: String,
    /// A second line (a paused job, a pinned resource).
    pub(crate) note: Option<String>,
    /// What a pointer's tooltip and a screen reader say: the label and the status.
    pub(crate) title: String,
}

/// An edge: indexes into the nodes, and whether it triggers (a `get` without `trigger` is
/// drawn dashed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) trigger: bool,
}

const NODE_WIDTH: f64 = 180.0;
const NODE_HEIGHT: f64 = 34.0;
const COLUMN_GAP: f64 = 70.0;
const ROW_HEIGHT: f64 = 46.0;
const MARGIN: f64 = 12.0;
/// Sorting passes by neighbours' rows.
const SWEEPS: usize = 4;

/// A place in the layout: a node or a waypoint of an edge.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Node(usize),
    Waypoint,
}

/// The column of every node: the longest path to it, cycles broken.
fn columns(nodes: usize, edges: &[Edge]) -> Vec<usize> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for (index, edge) in edges.iter().enumerate() {
        out[edge.from].push(index);
    }
    // Depth-first in declaration order: an edge to a node on the current path closes a cycle
    // and is left out of the ranking.
    let mut state = vec![0u8; nodes]; // 0 new, 1 on the path, 2 done
    let mut back = vec![false; edges.len()];
    let mut order = Vec::with_capacity(nodes);
    for start in 0..nodes {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            if let Some(&edge) = out[node].get(*next) {
                *next += 1;
                let to = edges[edge].to;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => back[edge] = true,
                    _ => {}
                }
            } else {
                state[node] = 2;
                order.push(node);
                stack.pop();
            }
        }
    }
    order.reverse(); // a topological order of the edges kept
    let mut column = vec![0usize; nodes];
    for &node in &order {
        for &edge in &out[node] {
            if !back[edge] {
                let to = edges[edge].to;
                column[to] = column[to].max(column[node] + 1);
            }
        }
    }
    column
}

/// The SVG of the graph, sized to fit; `id` names it in the page.
pub(crate) fn svg(nodes: &[Node], edges: &[Edge]) -> String {
    let column = columns(nodes.len(), edges);
    let width = column.iter().max().map_or(0, |max| max + 1);
    let mut slots: Vec<Vec<Slot>> = vec![Vec::new(); width];
    for (node, &c) in column.iter().enumerate() {
        slots[c].push(Slot::Node(node));
    }
    // Each edge as the slots it passes, left to right: (column, index in the column).
    let mut routes: Vec<Vec<(usize, usize)>> = Vec::with_capacity(edges.len());
    let mut place: Vec<usize> = vec![0; nodes.len()];
    for column_slots in &slots {
        for (row, slot) in column_slots.iter().enumerate() {
            if let Slot::Node(node) = slot {
                place[*node] = row;
            }
        }
    }
    for edge in edges {
        let (from, to) = (column[edge.from], column[edge.to]);
        let mut route = vec![(from, place[edge.from])];
        if to > from {
            for (c, column_slots) in slots.iter_mut().enumerate().take(to).skip(from + 1) {
                column_slots.push(Slot::Waypoint);
                route.push((c, column_slots.len() - 1));
            }
        }
        route.push((to, place[edge.to]));
        routes.push(route);
    }
    // Order within columns: sort by the mean row of the neighbours in the column before, then
    // after, a few times.
    let mut rows: Vec<Vec<f64>> = slots
        .iter()
        .map(|s| (0..s.len()).map(|i| i as f64).collect())
        .collect();
    for sweep in 0..SWEEPS {
        let forward = sweep % 2 == 0;
        let mut targets: Vec<Vec<(f64, usize)>> = rows
            .iter()
            .map(|r| r.iter().map(|&row| (row, 0)).collect())
            .collect();
        let mut sums: Vec<Vec<(f64, usize)>> =
            slots.iter().map(|s| vec![(0.0, 0); s.len()]).collect();
        for route in &routes {
            for pair in route.windows(2) {
                let ((c1, i1), (c2, i2)) = (pair[0], pair[1]);
                if c1 == c2 {
                    continue;
                }
                let (here, there) = if forward {
                    ((c2, i2), (c1, i1))
                } else {
                    ((c1, i1), (c2, i2))
                };
                let sum = &mut sums[here.0][here.1];
                sum.0 += rows[there.0][there.1];
                sum.1 += 1;
            }
        }
        for (c, column_sums) in sums.iter().enumerate() {
            for (i, &(sum, count)) in column_sums.iter().enumerate() {
                if count > 0 {
                    targets[c][i] = (sum / count as f64, 0);
                }
            }
        }
        for (c, column_targets) in targets.iter().enumerate() {
            let mut order: Vec<usize> = (0..column_targets.len()).collect();
            order.sort_by(|&a, &b| {
                column_targets[a]
                    .0
                    .total_cmp(&column_targets[b].0)
                    .then(rows[c][a].total_cmp(&rows[c][b]))
            });
            for (rank, &i) in order.iter().enumerate() {
                rows[c][i] = rank as f64;
            }
        }
    }
    let height_rows = slots.iter().map(Vec::len).max().unwrap_or(0);
    let x = |c: usize| MARGIN + c as f64 * (NODE_WIDTH + COLUMN_GAP);
    let y = |c: usize, i: usize, rows: &Vec<Vec<f64>>| MARGIN + rows[c][i] * ROW_HEIGHT;
    let total_width = MARGIN * 2.0 + width as f64 * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP;
    let total_height = MARGIN * 2.0 + height_rows as f64 * ROW_HEIGHT - (ROW_HEIGHT - NODE_HEIGHT);
    let mut svg = String::with_capacity(nodes.len() * 400 + edges.len() * 200);
    let _ = write!(
        svg,
        "<svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" height=\"{h:.0}\" role=\"group\" aria-label=\"pipeline graph\"><g class=\"viewport\">",
        w = total_width.max(1.0),
        h = total_height.max(1.0)
    );
    // Edges first, under the nodes.
    for (edge, route) in edges.iter().zip(&routes) {
        let mut d = String::new();
        for (n, &(c, i)) in route.iter().enumerate() {
            let top = y(c, i, &rows) + NODE_HEIGHT / 2.0;
            let (left, right) = (x(c), x(c) + NODE_WIDTH);
            if n == 0 {
                let _ = write!(d, "M{right:.1},{top:.1}");
                continue;
            }
            let (pc, pi) = route[n - 1];
            let ptop = y(pc, pi, &rows) + NODE_HEIGHT / 2.0;
            let pright = x(pc) + NODE_WIDTH;
            let last = n == route.len() - 1;
            let mid = (pright + left) / 2.0;
            let _ = write!(
                d,
                " C{mid:.1},{ptop:.1} {mid:.1},{top:.1} {left:.1},{top:.1}"
            );
            if !last {
                let _ = write!(d, " L{right:.1},{top:.1}");
            }
        }
        let class = if edge.trigger { "edge" } else { "edge manual" };
        let _ = write!(
            svg,
            "<path class=\"{class}\" d=\"{d}\" data-from=\"{}\" data-to=\"{}\"/>",
            edge.from, edge.to
        );
    }
    for (c, column_slots) in slots.iter().enumerate() {
        for (i, slot) in column_slots.iter().enumerate() {
            let Slot::Node(index) = slot else { continue };
            let node = &nodes[*index];
            let (left, top) = (x(c), y(c, i, &rows));
            svg.push_str("<a href=\"");
            escape_into(&mut svg, &node.href);
            svg.push_str("\" class=\"node ");
            escape_into(&mut svg, &node.class);
            let _ = write!(svg, "\" data-node=\"{index}\" data-id=\"");
            escape_into(&mut svg, &node.id);
            svg.push_str("\"><title>");
            escape_into(&mut svg, &node.title);
            let _ = write!(
                svg,
                "</title><rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{NODE_WIDTH}\" height=\"{NODE_HEIGHT}\" rx=\"5\"/>"
            );
            let text_y = if node.note.is_some() {
                top + 14.0
            } else {
                top + 21.0
            };
            let _ = write!(svg, "<text x=\"{:.1}\" y=\"{text_y:.1}\">", left + 8.0);
            escape_into(&mut svg, &shorten(&node.label, 26));
            svg.push_str("</text>");
            if let Some(note) = &node.note {
                let _ = write!(
                    svg,
                    "<text class=\"note\" x=\"{:.1}\" y=\"{:.1}\">",
                    left + 8.0,
                    top + 28.0
                );
                escape_into(&mut svg, note);
                svg.push_str("</text>");
            }
            svg.push_str("</a>");
        }
    }
    svg.push_str("</g></svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::{Edge, Node, columns, svg};

    fn edge(from: usize, to: usize) -> Edge {
        Edge {
            from,
            to,
            trigger: true,
        }
    }

    #[test]
    fn a_node_is_one_column_after_its_furthest_input() {
        // 0 -> 1 -> 2, and 0 -> 2 directly.
        assert_eq!(columns(3, &[edge(0, 1), edge(1, 2), edge(0, 2)]), [0, 1, 2]);
    }

    #[test]
    fn cycles_are_broken() {
        // A job that puts the resource that triggers it: 0 (resource) -> 1 (job) -> 0.
        assert_eq!(columns(2, &[edge(0, 1), edge(1, 0)]), [0, 1]);
    }

    fn node(id: &str) -> Node {
        Node {
            id: id.to_owned(),
            label: id.to_owned(),
            class: "job".to_owned(),
            href: format!("/{id}"),
            note: None,
            title: id.to_owned(),
        }
    }

    #[test]
    fn an_edge_that_skips_columns_passes_a_waypoint_in_each() {
        let nodes = [node("a"), node("b"), node("c")];
        let drawn = svg(&nodes, &[edge(0, 1), edge(1, 2), edge(0, 2)]);
        // a -> c has a waypoint in b's column: its path has a straight part there.
        let long = drawn
            .split("<path ")
            .find(|path| path.contains("data-from=\"0\" data-to=\"2\""))
            .expect("the edge a -> c");
        assert!(long.contains(" L"), "{long}");
        assert_eq!(drawn.matches("<a href=").count(), 3);
    }

    #[test]
    fn labels_are_escaped_and_the_layout_is_stable() {
        let nodes = [node("<x>"), node("y")];
        let once = svg(&nodes, &[edge(0, 1)]);
        assert!(once.contains("&lt;x&gt;"));
        assert!(!once.contains("<x>"));
        assert_eq!(once, svg(&nodes, &[edge(0, 1)]));
    }
}
