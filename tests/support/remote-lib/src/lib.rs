//! Remote functions defined in a crate of their own, as a library of tasks
//! would be: the call-by-name tests find them in the registry.

use serde::{Deserialize, Serialize};

/// A value type of this crate, to cross the codec both ways (and, as it
/// derives `GetSize`, to be measured in the object store of any crate).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, get_size2::GetSize)]
pub struct Point {
    /// Horizontal.
    pub x: i32,
    /// Vertical.
    pub y: i32,
}

/// Upper-cases its input.
#[rustyray::remote]
pub fn shout(text: String) -> String {
    text.to_uppercase()
}

/// Moves a point, asynchronously.
#[rustyray::remote]
pub async fn translate(point: Point, by: i32) -> Point {
    Point { x: point.x + by, y: point.y + by }
}
