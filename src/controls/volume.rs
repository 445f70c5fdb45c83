//! The speaker volume: an ALSA mixer control turned by the volume buttons, and the level
//! remembered in the state directory so a restart keeps it.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{SpeakerConfig, SpeakerSink};

/// Where the volume is carried out.
pub trait Mixer {
    fn set(&mut self, percent: u8) -> anyhow::Result<()>;
}

/// One ALSA simple mixer control on the speaker's card.
pub struct AlsaMixer {
    mixer: alsa::mixer::Mixer,
    control: alsa::mixer::SelemId,
}

/// Controls tried, in order, when the config says "auto".
const USUAL_CONTROLS: [&str; 4] = ["Master", "PCM", "Speaker", "Headphone"];

impl AlsaMixer {
    pub fn open(device: &str, control: &str) -> anyhow::Result<AlsaMixer> {
        let card = mixer_card(device);
        let mixer = alsa::mixer::Mixer::new(&card, false)
            .with_context(|| format!("cannot open the ALSA mixer {card}"))?;
        let name = if control == "auto" {
            auto_control(&mixer).with_context(|| {
                format!("the ALSA mixer {card} has no playback volume control; set speaker.mixer")
            })?
        } else {
            control.to_owned()
        };
        let id = alsa::mixer::SelemId::new(&name, 0);
        match mixer.find_selem(&id) {
            Some(selem) if selem.has_playback_volume() => {}
            _ => anyhow::bail!(
                "the ALSA mixer {card} has no playback volume control {name:?} (speaker.mixer; \
                 `amixer -D {card} scontrols` lists them)"
            ),
        }
        log::info!("volume buttons turn the ALSA control {name:?} on {card}");
        Ok(AlsaMixer { mixer, control: id })
    }
}

fn auto_control(mixer: &alsa::mixer::Mixer) -> Option<String> {
    let with_volume: Vec<String> = mixer
        .iter()
        .filter_map(alsa::mixer::Selem::new)
        .filter(|s| s.has_playback_volume())
        .filter_map(|s| s.get_id().get_name().ok().map(str::to_owned))
        .collect();
    USUAL_CONTROLS
        .iter()
        .find(|usual| with_volume.iter().any(|c| c == *usual))
        .map(|c| (*c).to_owned())
        .or_else(|| with_volume.into_iter().next())
}

/// The mixer that belongs to an ALSA playback device: `hw:1,0` → `hw:1`,
/// `plughw:CARD=Speaker,DEV=0` → `hw:CARD=Speaker`; anything else → `default`.
pub fn mixer_card(device: &str) -> String {
    let Some((kind, args)) = device.split_once(':') else {
        return "default".to_owned();
    };
    if !matches!(kind, "hw" | "plughw" | "sysdefault" | "front") {
        return "default".to_owned();
    }
    let card = args.split(',').next().unwrap_or_default();
    if card.is_empty() {
        "default".to_owned()
    } else {
        format!("hw:{card}")
    }
}

impl Mixer for AlsaMixer {
    fn set(&mut self, percent: u8) -> anyhow::Result<()> {
        // Re-read: the card may have been unplugged and replugged since.
        let _ = self.mixer.handle_events();
        let selem = self
            .mixer
            .find_selem(&self.control)
            .context("the mixer control is gone (was the speaker unplugged?)")?;
        let (min, max) = selem.get_playback_volume_range();
        let value = min + (max - min) * i64::from(percent.min(100)) / 100;
        selem.set_playback_volume_all(value)?;
        Ok(())
    }
}

/// No mixer to turn (the null speaker, or a card without one): the level is only kept.
pub struct NoMixer;

impl Mixer for NoMixer {
    fn set(&mut self, percent: u8) -> anyhow::Result<()> {
        log::debug!("volume {percent}% (no mixer to set)");
        Ok(())
    }
}

/// The volume as carried out and remembered.
pub struct Volume {
    mixer: Box<dyn Mixer>,
    file: PathBuf,
    last_error: Option<String>,
}

impl Volume {
    pub fn open(speaker: &SpeakerConfig, state_dir: &Path) -> Volume {
        let mixer: Box<dyn Mixer> = match speaker.sink {
            SpeakerSink::Null => Box::new(NoMixer),
            SpeakerSink::Alsa => match AlsaMixer::open(&speaker.device, &speaker.mixer) {
                Ok(mixer) => Box::new(mixer),
                Err(e) => {
                    log::error!("{e:#}; the volume buttons will do nothing");
                    Box::new(NoMixer)
                }
            },
        };
        Volume {
            mixer,
            file: state_dir.join("volume"),
            last_error: None,
        }
    }

    /// The level saved by the last run, if any and readable.
    pub fn remembered(state_dir: &Path) -> Option<u8> {
        let path = state_dir.join("volume");
        let text = std::fs::read_to_string(&path).ok()?;
        match text.trim().parse::<u8>() {
            Ok(v) if v <= 100 => Some(v),
            _ => {
                log::warn!("ignoring {}: not a volume from 0 to 100", path.display());
                None
            }
        }
    }

    /// Sets the mixer and saves the level for the next start.
    pub fn set(&mut self, percent: u8) {
        if let Err(e) = self.mixer.set(percent) {
            let e = format!("{e:#}");
            if self.last_error.as_ref() != Some(&e) {
                log::warn!("cannot set the volume: {e}");
            }
            self.last_error = Some(e);
        } else {
            self.last_error = None;
        }
        if let Err(e) = save(&self.file, percent) {
            log::warn!("cannot remember the volume in {}: {e}", self.file.display());
        }
    }
}

/// Written whole or not at all: a power cut leaves the old level or the new one.
fn save(path: &Path, percent: u8) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        // The state directory (systemd's StateDirectory=, mode 0700) before the first login.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{percent}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_playback_device_names_its_cards_mixer() {
        assert_eq!(mixer_card("default"), "default");
        assert_eq!(mixer_card("hw:1,0"), "hw:1");
        assert_eq!(mixer_card("plughw:CARD=Speaker,DEV=0"), "hw:CARD=Speaker");
        assert_eq!(mixer_card("sysdefault:CARD=Jabra"), "hw:CARD=Jabra");
        assert_eq!(mixer_card("dmix:CARD=0"), "default");
    }

    #[test]
    fn the_volume_is_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Volume::remembered(dir.path()), None);
        let mut v = Volume {
            mixer: Box::new(NoMixer),
            file: dir.path().join("volume"),
            last_error: None,
        };
        v.set(35);
        assert_eq!(Volume::remembered(dir.path()), Some(35));
        std::fs::write(dir.path().join("volume"), "250\n").unwrap();
        assert_eq!(Volume::remembered(dir.path()), None, "out of range");
    }
}
