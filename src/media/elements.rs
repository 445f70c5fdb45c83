//! Small helpers for building pipelines, shared by the call's pipeline and its peers.

use anyhow::Context as _;
use gst::prelude::*;

use super::encoder;

/// A named element, or an error saying which Debian package brings its plugin.
pub(super) fn make(factory: &str, name: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .with_context(|| {
            format!(
                "creating {factory}: is its plugin installed? ({})",
                encoder::package_of(factory)
            )
        })
}

pub(super) fn caps_filter(name: &str, caps: gst::Caps) -> anyhow::Result<gst::Element> {
    Ok(gst::ElementFactory::make("capsfilter")
        .name(name)
        .property("caps", caps)
        .build()?)
}

/// Adds `chain` to `bin` and links it in order.
pub(super) fn add_linked(
    bin: &impl IsA<gst::Bin>,
    chain: &[&gst::Element],
) -> Result<(), gst::glib::BoolError> {
    bin.add_many(chain.iter().copied())?;
    gst::Element::link_many(chain.iter().copied())
}
