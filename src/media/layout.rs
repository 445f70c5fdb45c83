//! The display's layout: every remote picture in a grid, as square as the count allows.

use gst::prelude::*;

/// The compositor pad of the black background, linked first.
const BACKGROUND_PAD: &str = "sink_0";

/// Places every remote picture on `compositor` in a grid filling `size`.
pub fn tile(compositor: &gst::Element, size: (u32, u32)) {
    let pads: Vec<gst::Pad> = compositor
        .sink_pads()
        .into_iter()
        .filter(|p| p.name() != BACKGROUND_PAD)
        .collect();
    let n = pads.len().max(1) as u32;
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(1);
    let rows = n.div_ceil(cols);
    let (w, h) = (size.0 / cols, size.1 / rows);
    for (i, pad) in pads.iter().enumerate() {
        let i = i as u32;
        pad.set_property("xpos", ((i % cols) * w) as i32);
        pad.set_property("ypos", ((i / cols) * h) as i32);
        pad.set_property("width", w as i32);
        pad.set_property("height", h as i32);
    }
}
