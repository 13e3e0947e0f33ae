// A small score behind the stand-in `MuseScore 3.0` module: bars, chords and rests with
// their tuplets and ties, chord symbols and a selection, and the plug-in API's objects on top
// of them: Score, Cursor, Measure, Segment, Chord, Rest, Note, Tie, Tuplet, Selection and
// FractionWrapper. Their members are those of MuseScore 4's src/engraving/api/v1/ headers
// (score.h, cursor.h, elements.h, selection.h, fraction.h, scoreelement.h), and only the ones
// a continuation can use: a call MuseScore 4 lacks is a TypeError here too. Writing follows
// MuseScore's input: a note replaces what its time held, a note across a bar line is split
// and tied, a tuplet is filled with rests first; MuseScore 4 stores tonal pitch classes
// unchecked, and so does this. Every call is recorded (harness.js).
.pragma library
.import "../harness.js" as Harness

var DIVISION = 480;
var WHOLE = DIVISION * 4;
var TYPES = { NOTE: 20, REST: 25, HARMONY: 48, TIE: 86, SEGMENT: 89, MEASURE: 88,
              TUPLET: 91, CHORD: 93 };

function gcd(a, b) { a = Math.abs(a); b = Math.abs(b); while (b) { var t = a % b; a = b; b = t; } return a || 1; }
function ticksOf(f) { return f[0] * WHOLE / f[1]; }
function reduce(n, d) { var g = gcd(n, d); return [n / g, d / g]; }

// Note values MuseScore's TDuration accepts: breve to 1/1024, plain, dotted, double-dotted.
function durationValues() {
    var list = [];
    for (var d = 1; d <= 1024; d *= 2) {
        list.push(reduce(2 * 7, d * 4), reduce(2 * 3, d * 2), reduce(2, d));
    }
    return list;
}
var VALUES = durationValues();
function isValue(f) {
    for (var i = 0; i < VALUES.length; i++) if (VALUES[i][0] * f[1] === f[0] * VALUES[i][1]) return true;
    return false;
}
// `ticks` as note values, largest first.
function decompose(ticks) {
    var out = [];
    for (var i = 0; i < VALUES.length && ticks > 0; i++) {
        while (ticksOf(VALUES[i]) <= ticks + 1e-9) { out.push(VALUES[i]); ticks -= ticksOf(VALUES[i]); }
    }
    return out;
}

function fractionWrapper(n, d) {
    return { numerator: n, denominator: d, ticks: Math.round(n * WHOLE / d), str: n + "/" + d,
             __describe: function () { return n + "/" + d; } };
}

// An API list: length and items by index, like a QQmlListProperty; no Array methods.
function list(items) {
    var out = { length: items.length };
    for (var i = 0; i < items.length; i++) out[i] = items[i];
    return out;
}

// ----------------------------------------------------------------- the model

function Model(spec) {
    this.name = spec.name;
    this.staves = spec.staves;
    this.measures = [];
    var tick = 0;
    for (var i = 0; i < spec.measures.length; i++) {
        var m = spec.measures[i], length = ticksOf(m.actual);
        this.measures.push({ tick: tick, ticks: length, nominal: m.nominal, actual: m.actual });
        tick += length;
    }
    this.nextId = 1;
    this.tuplets = {};
    for (i = 0; i < (spec.tuplets || []).length; i++) {
        var t = spec.tuplets[i];
        this.tuplets[t.id] = { id: t.id, track: t.track, tick: t.tick, ticks: t.ticks, ratio: t.ratio };
        this.nextId = Math.max(this.nextId, t.id + 1);
    }
    this.crs = [];
    for (i = 0; i < spec.elements.length; i++) {
        var e = spec.elements[i], shift = this.staves[Math.floor(e.track / 4)].shift;
        var notes = null;
        if (e.pitches.length) {
            notes = [];
            for (var k = 0; k < e.pitches.length; k++)
                notes.push({ pitch: e.pitches[k], tpc1: e.tpcs[k], tpc2: e.tpcs[k] + shift, tie: !!e.tie });
        }
        this.crs.push({ id: this.nextId++, track: e.track, tick: e.tick, ticks: e.ticks, dur: e.duration,
                        notes: notes, tuplet: e.tuplet === null ? null : e.tuplet });
    }
    this.harmonies = spec.harmonies || [];
    this.selection = spec.selection;
    this.sort();
}

Model.prototype.sort = function () {
    this.crs.sort(function (a, b) { return a.tick - b.tick || a.track - b.track; });
};
Model.prototype.end = function () {
    var last = this.measures[this.measures.length - 1];
    return last.tick + last.ticks;
};
Model.prototype.measureIndexAt = function (tick) {
    for (var i = 0; i < this.measures.length; i++)
        if (tick >= this.measures[i].tick && tick < this.measures[i].tick + this.measures[i].ticks) return i;
    return -1;
};
Model.prototype.crAt = function (track, tick) {
    for (var i = 0; i < this.crs.length; i++)
        if (this.crs[i].track === track && this.crs[i].tick === tick) return this.crs[i];
    return null;
};
Model.prototype.segmentTicks = function () {
    var seen = {}, ticks = [];
    for (var i = 0; i < this.measures.length; i++) seen[this.measures[i].tick] = true;
    for (i = 0; i < this.crs.length; i++) seen[this.crs[i].tick] = true;
    for (var t in seen) ticks.push(Number(t));
    ticks.sort(function (a, b) { return a - b; });
    return ticks;
};
// The first segment tick >= `from` (> when `after`) holding an element of `track` (any
// track when `track` is null), or null.
Model.prototype.nextTick = function (from, track, after) {
    var ticks = this.segmentTicks();
    for (var i = 0; i < ticks.length; i++) {
        if (after ? ticks[i] <= from : ticks[i] < from) continue;
        if (track === null || this.crAt(track, ticks[i])) return ticks[i];
    }
    return null;
};
Model.prototype.tupletAt = function (track, tick) {
    for (var id in this.tuplets) {
        var t = this.tuplets[id];
        if (t.track === track && tick >= t.tick && tick < t.tick + t.ticks) return t;
    }
    return null;
};
Model.prototype.snapshot = function () {
    return JSON.stringify({ crs: this.crs, tuplets: this.tuplets, harmonies: this.harmonies,
                            measures: this.measures, nextId: this.nextId });
};
Model.prototype.restore = function (text) {
    var s = JSON.parse(text);
    this.crs = s.crs; this.tuplets = s.tuplets; this.harmonies = s.harmonies;
    this.measures = s.measures; this.nextId = s.nextId;
};

// Empty [from, to) of `track` as MuseScore's input does: what starts there goes (a tuplet
// the span cuts goes whole), and what sticks out past `to` becomes rests.
Model.prototype.clear = function (track, from, to, keepTuplet) {
    var stop = to, self = this;
    for (var id in this.tuplets) {
        var t = this.tuplets[id];
        if (t.track === track && t !== keepTuplet && t.tick < to && t.tick + t.ticks > from) {
            stop = Math.max(stop, t.tick + t.ticks);
            delete this.tuplets[id];
        }
    }
    var kept = [];
    for (var i = 0; i < this.crs.length; i++) {
        var cr = this.crs[i];
        if (cr.track === track && cr.tick >= from && cr.tick < stop) {
            stop = Math.max(stop, cr.tick + cr.ticks);
            continue;
        }
        kept.push(cr);
    }
    this.crs = kept;
    var at = to, values = decompose(stop - to);
    for (i = 0; i < values.length; i++) {
        if (at >= this.end()) break;
        this.crs.push({ id: this.nextId++, track: track, tick: at, ticks: ticksOf(values[i]), dur: values[i],
                        notes: null, tuplet: keepTuplet && at < keepTuplet.tick + keepTuplet.ticks ? keepTuplet.id : null });
        at += ticksOf(values[i]);
    }
    self.sort();
};

// Write a chord (`pitches`) or a rest (null) of the written value `dur` at `tick`: the new
// elements, in order (a note across a bar line is split and tied).
Model.prototype.write = function (track, tick, dur, pitches) {
    var tuplet = this.tupletAt(track, tick), length = ticksOf(dur), pieces = [];
    if (tuplet) {
        length = length * tuplet.ratio[1] / tuplet.ratio[0];
        pieces.push({ tick: tick, ticks: length, dur: dur });
    } else {
        var at = tick, left = length;
        while (left > 0) {
            var m = this.measures[this.measureIndexAt(at)];
            if (!m) break;                                           // past the last bar: dropped
            var room = Math.min(left, m.tick + m.ticks - at);
            var values = room === length ? [dur] : decompose(room);
            for (var i = 0; i < values.length; i++) {
                pieces.push({ tick: at, ticks: ticksOf(values[i]), dur: values[i] });
                at += ticksOf(values[i]);
            }
            left -= room;
        }
    }
    if (!pieces.length) return [];
    var last = pieces[pieces.length - 1];
    this.clear(track, tick, last.tick + last.ticks, tuplet);
    var made = [], shift = this.staves[Math.floor(track / 4)].shift, key = this.staves[Math.floor(track / 4)].key - shift;
    for (var p = 0; p < pieces.length; p++) {
        var notes = null;
        if (pitches) {
            notes = [];
            for (var k = 0; k < pitches.length; k++) {
                var tpc = spelling(pitches[k], key);
                notes.push({ pitch: pitches[k], tpc1: tpc, tpc2: tpc + shift, tie: p < pieces.length - 1 });
            }
        }
        var cr = { id: this.nextId++, track: track, tick: pieces[p].tick, ticks: pieces[p].ticks, dur: pieces[p].dur,
                   notes: notes, tuplet: tuplet ? tuplet.id : null };
        this.crs.push(cr);
        made.push(cr);
    }
    this.sort();
    return made;
};

// MuseScore's spelling of a MIDI pitch in a concert key: sharps in sharp keys, else flats.
function spelling(pitch, key) {
    var sharps = [14, 21, 16, 23, 18, 13, 20, 15, 22, 17, 24, 19];
    var flats = [14, 9, 16, 11, 18, 13, 8, 15, 10, 17, 12, 19];
    return (key >= 0 ? sharps : flats)[pitch % 12];
}

Model.prototype.dump = function () {
    var self = this, crs = [];
    for (var i = 0; i < this.crs.length; i++) {
        var cr = this.crs[i], t = cr.tuplet === null ? null : self.tuplets[cr.tuplet];
        crs.push({ track: cr.track, tick: cr.tick, ticks: cr.ticks, duration: cr.dur,
                   pitches: cr.notes ? cr.notes.map(function (n) { return n.pitch; }) : [],
                   tpc1: cr.notes ? cr.notes.map(function (n) { return n.tpc1; }) : [],
                   tpc2: cr.notes ? cr.notes.map(function (n) { return n.tpc2; }) : [],
                   tie: cr.notes ? cr.notes.some(function (n) { return n.tie; }) : false,
                   tuplet: t ? t.ratio : null });
    }
    return { measures: this.measures, elements: crs, harmonies: this.harmonies };
};

// ------------------------------------------------------------ the API objects

function base(type, name, self) {
    self.type = type;
    self.name = name;
    return self;
}

function scoreWrapper(model) {
    var score = base(0, "Score", {});
    Object.defineProperties(score, {
        firstMeasure: { get: function () { return measureWrapper(model, 0); } },
        lastMeasure: { get: function () { return measureWrapper(model, model.measures.length - 1); } },
        nmeasures: { get: function () { return model.measures.length; } },
        nstaves: { get: function () { return model.staves.length; } },
        ntracks: { get: function () { return model.staves.length * 4; } },
        scoreName: { get: function () { return model.name; } },
        selection: { get: function () { return selectionWrapper(model); } },
        keysig: { get: function () { return model.staves[0].key - model.staves[0].shift; } }
    });
    score.is = function (other) { return !!other && other.scoreName === model.name; };
    score.newCursor = function () { Harness.record("Score.newCursor", []); return new Cursor(model); };
    score.appendMeasures = function (n) {
        Harness.record("Score.appendMeasures", [n]);
        var last = model.measures[model.measures.length - 1];
        for (var i = 0; i < n; i++) {
            var tick = model.end();
            model.measures.push({ tick: tick, ticks: ticksOf(last.nominal), nominal: last.nominal, actual: last.nominal });
            for (var staff = 0; staff < model.staves.length; staff++)
                model.crs.push({ id: model.nextId++, track: staff * 4, tick: tick, ticks: ticksOf(last.nominal),
                                 dur: last.nominal, notes: null, tuplet: null });
        }
        model.sort();
    };
    score.startCmd = function () {
        Harness.record("Score.startCmd", []);
        model.undo = model.snapshot();
    };
    score.endCmd = function (rollback) {
        Harness.record("Score.endCmd", [!!rollback]);
        if (rollback) model.restore(model.undo);
    };
    return score;
}

function Cursor(model) {
    this._model = model;
    this._track = 0;
    this._tick = null;                  // the segment's tick; null: no segment
    this._duration = null;
    this._written = [];                 // the chord pieces of the last note written
    this.filter = 0;
}
Object.defineProperties(Cursor.prototype, {
    track: { get: function () { return this._track; },
             set: function (v) { this._track = Math.max(0, Math.min(v, this._model.staves.length * 4 - 1)); } },
    staffIdx: { get: function () { return Math.floor(this._track / 4); },
                set: function (v) { this.track = v * 4 + this._track % 4; } },
    voice: { get: function () { return this._track % 4; },
             set: function (v) { this.track = Math.floor(this._track / 4) * 4 + v; } },
    tick: { get: function () { return this._tick === null ? 0 : this._tick; } },
    segment: { get: function () { return this._tick === null ? null : segmentWrapper(this._model, this._tick); } },
    element: { get: function () {
        var cr = this._tick === null ? null : this._model.crAt(this._track, this._tick);
        return cr ? crWrapper(this._model, cr) : null;
    } },
    measure: { get: function () {
        return this._tick === null ? null : measureWrapper(this._model, this._model.measureIndexAt(this._tick));
    } },
    keySignature: { get: function () { return this._model.staves[Math.floor(this._track / 4)].key; } },
    score: { get: function () { return scoreWrapper(this._model); } }
});
Cursor.prototype.rewind = function (mode) {
    Harness.record("Cursor.rewind", [mode]);
    var sel = this._model.selection;
    if (mode === 0) {
        this._tick = this._model.nextTick(0, this._track, false);
    } else if (mode === 1) {
        if (!sel) return;
        this.track = sel.startStaff * 4;
        this._tick = this._model.nextTick(sel.startTick, this._track, false);
    } else if (mode === 2) {
        if (!sel) return;
        this._tick = sel.endTick >= this._model.end() ? null : sel.endTick;
        this.track = sel.endStaff * 4 - 1;
    }
};
Cursor.prototype.rewindToTick = function (tick) {
    Harness.record("Cursor.rewindToTick", [tick]);
    this._tick = this._model.nextTick(tick, this._track, false);
};
Cursor.prototype.next = function () {
    if (this._tick === null) return false;
    this._tick = this._model.nextTick(this._tick, this._track, true);
    return this._tick !== null;
};
Cursor.prototype.nextMeasure = function () {
    Harness.record("Cursor.nextMeasure", []);
    if (this._tick === null) return false;
    var m = this._model.measures[this._model.measureIndexAt(this._tick) + 1];
    this._tick = m ? this._model.nextTick(m.tick, this._track, false) : null;
    return this._tick !== null;
};
Cursor.prototype.prev = function () {
    if (this._tick === null) return false;
    var ticks = this._model.segmentTicks(), found = null;
    for (var i = 0; i < ticks.length; i++)
        if (ticks[i] < this._tick && this._model.crAt(this._track, ticks[i])) found = ticks[i];
    this._tick = found;
    return found !== null;
};
Cursor.prototype.setDuration = function (z, n) {
    Harness.record("Cursor.setDuration", [z, n]);
    this._duration = n && isValue([z, n]) ? reduce(z, n) : [1, 4];
};
Cursor.prototype._input = function (pitches) {
    if (this._tick === null) return;
    var made = this._model.write(this._track, this._tick, this._duration || [1, 4], pitches);
    this._written = pitches ? made : [];
    var last = made[made.length - 1];
    var next = last ? last.tick + last.ticks : null;
    this._tick = next !== null && next < this._model.end() ? next : null;
};
Cursor.prototype.addNote = function (pitch, addToChord) {
    Harness.record("Cursor.addNote", addToChord === undefined ? [pitch] : [pitch, addToChord]);
    if (addToChord && this._written.length) {
        var shift = this._model.staves[Math.floor(this._track / 4)].shift;
        var key = this._model.staves[Math.floor(this._track / 4)].key - shift;
        for (var i = 0; i < this._written.length; i++) {
            var tpc = spelling(pitch, key);
            this._written[i].notes.push({ pitch: pitch, tpc1: tpc, tpc2: tpc + shift, tie: i < this._written.length - 1 });
        }
        return;
    }
    this._input([pitch]);
};
Cursor.prototype.addRest = function () {
    Harness.record("Cursor.addRest", []);
    this._input(null);
};
Cursor.prototype.addTuplet = function (ratio, duration) {
    Harness.record("Cursor.addTuplet", [ratio, duration]);
    if (this._tick === null) return;
    var m = this._model.measures[this._model.measureIndexAt(this._tick)];
    var length = duration.ticks, r = [ratio.numerator, ratio.denominator];
    var baseLen = reduce(duration.numerator, duration.denominator * r[1]);
    if (this._tick + length > m.tick + m.ticks || !isValue(baseLen)) {
        Harness.record("warning", ["Cursor.addTuplet: cannot add this tuplet here"]);
        return;
    }
    var tuplet = { id: this._model.nextId++, track: this._track, tick: this._tick, ticks: length, ratio: r };
    this._model.clear(this._track, this._tick, this._tick + length, null);
    var kept = [];
    for (var i = 0; i < this._model.crs.length; i++) {       // the tuplet's rests replace what was there
        var cr = this._model.crs[i];
        if (!(cr.track === this._track && cr.tick >= tuplet.tick && cr.tick < tuplet.tick + length)) kept.push(cr);
    }
    this._model.crs = kept;
    this._model.tuplets[tuplet.id] = tuplet;
    for (i = 0; i < r[0]; i++)
        this._model.crs.push({ id: this._model.nextId++, track: this._track, tick: tuplet.tick + i * length / r[0],
                               ticks: length / r[0], dur: baseLen, notes: null, tuplet: tuplet.id });
    this._model.sort();
    this._duration = baseLen;
};
Cursor.prototype.add = function (element) {
    Harness.record("Cursor.add", [element]);
    if (this._tick === null || !element) return;
    if (element.type === TYPES.HARMONY)
        this._model.harmonies.push({ tick: this._tick, track: this._track, text: element.text });
};

function measureWrapper(model, index) {
    var m = model.measures[index];
    if (!m) return null;
    var measure = base(TYPES.MEASURE, "Measure", {});
    Object.defineProperties(measure, {
        firstSegment: { get: function () { return segmentWrapper(model, m.tick); } },
        nextMeasure: { get: function () { return measureWrapper(model, index + 1); } },
        prevMeasure: { get: function () { return measureWrapper(model, index - 1); } },
        timesigActual: { get: function () { return fractionWrapper(m.actual[0], m.actual[1]); } },
        timesigNominal: { get: function () { return fractionWrapper(m.nominal[0], m.nominal[1]); } },
        ticks: { get: function () { return fractionWrapper(m.ticks, WHOLE); } }
    });
    measure.is = function (other) { return !!other && other.type === TYPES.MEASURE && other.firstSegment.tick === m.tick; };
    return measure;
}

function segmentWrapper(model, tick) {
    var segment = base(TYPES.SEGMENT, "Segment", {});
    Object.defineProperties(segment, {
        tick: { get: function () { return tick; } },
        next: { get: function () {
            var t = model.nextTick(tick, null, true);
            return t === null ? null : segmentWrapper(model, t);
        } },
        annotations: { get: function () {
            var found = [];
            for (var i = 0; i < model.harmonies.length; i++)
                if (model.harmonies[i].tick === tick) found.push(harmonyWrapper(model, model.harmonies[i]));
            return list(found);
        } }
    });
    segment.elementAt = function (track) {
        var cr = model.crAt(track, tick);
        return cr ? crWrapper(model, cr) : null;
    };
    segment.is = function (other) { return !!other && other.type === TYPES.SEGMENT && other.tick === tick; };
    return segment;
}

function harmonyWrapper(model, harmony) {
    var h = base(TYPES.HARMONY, "Harmony", {});
    Object.defineProperties(h, {
        text: { get: function () { return harmony.text; } },
        track: { get: function () { return harmony.track; } },
        parent: { get: function () { return segmentWrapper(model, harmony.tick); } }
    });
    h.__model = harmony;
    h.is = function (other) { return !!other && other.__model === harmony; };
    h.__describe = function () { return "Harmony " + harmony.text; };
    return h;
}

function crWrapper(model, cr) {
    var chord = !!cr.notes;
    var e = base(chord ? TYPES.CHORD : TYPES.REST, chord ? "Chord" : "Rest", {});
    Object.defineProperties(e, {
        track: { get: function () { return cr.track; } },
        duration: { get: function () { return fractionWrapper(cr.dur[0], cr.dur[1]); } },
        actualDuration: { get: function () { var f = reduce(cr.ticks, WHOLE); return fractionWrapper(f[0], f[1]); } },
        globalDuration: { get: function () { var f = reduce(cr.ticks, WHOLE); return fractionWrapper(f[0], f[1]); } },
        tuplet: { get: function () { return cr.tuplet === null ? null : tupletWrapper(model, model.tuplets[cr.tuplet]); } },
        parent: { get: function () { return segmentWrapper(model, cr.tick); } }
    });
    if (chord) {
        Object.defineProperty(e, "notes", { get: function () {
            var notes = [];
            for (var i = 0; i < cr.notes.length; i++) notes.push(noteWrapper(model, cr, cr.notes[i]));
            return list(notes);
        } });
        e.add = function (note) {
            Harness.record("Chord.add", [note]);
            var shift = model.staves[Math.floor(cr.track / 4)].shift;
            cr.notes.push({ pitch: note.pitch, tpc1: note.tpc1, tpc2: note.tpc2 === undefined ? note.tpc1 + shift : note.tpc2, tie: false });
        };
        e.remove = function (note) {
            Harness.record("Chord.remove", [note]);
            cr.notes = cr.notes.filter(function (n) { return n !== note.__model; });
        };
    }
    e.__model = cr;
    e.is = function (other) { return !!other && other.__model === cr; };
    e.__describe = function () { return e.name + "@" + cr.tick; };
    return e;
}

function tupletWrapper(model, tuplet) {
    if (!tuplet) return null;
    var t = base(TYPES.TUPLET, "Tuplet", {});
    Object.defineProperties(t, {
        actualNotes: { get: function () { return tuplet.ratio[0]; } },
        normalNotes: { get: function () { return tuplet.ratio[1]; } },
        duration: { get: function () { var f = reduce(tuplet.ticks, WHOLE); return fractionWrapper(f[0], f[1]); } }
    });
    t.is = function (other) { return !!other && other.actualNotes === tuplet.ratio[0] && other.duration.ticks === tuplet.ticks; };
    return t;
}

function noteWrapper(model, cr, note) {
    var n = base(TYPES.NOTE, "Note", {}), shift = model.staves[Math.floor(cr.track / 4)].shift;
    Object.defineProperties(n, {
        pitch: { get: function () { return note.pitch; } },
        tpc1: { get: function () { return note.tpc1; },
                set: function (v) { Harness.record("Note.tpc1=", [v]); note.tpc1 = v; } },
        tpc2: { get: function () { return note.tpc2; },
                set: function (v) { Harness.record("Note.tpc2=", [v]); note.tpc2 = v; } },
        tpc: { get: function () { return shift ? note.tpc2 : note.tpc1; } },   // "Concert pitch" off
        track: { get: function () { return cr.track; } },
        parent: { get: function () { return crWrapper(model, cr); } },
        tieForward: { get: function () { return note.tie ? tieWrapper(n) : null; } },
        tieBack: { get: function () {
            var before = null;
            for (var i = 0; i < model.crs.length; i++) {
                var other = model.crs[i];
                if (other.track === cr.track && other.notes && other.tick + other.ticks === cr.tick) before = other;
            }
            var tied = before && before.notes.some(function (o) { return o.tie && o.pitch === note.pitch; });
            return tied ? tieWrapper(n) : null;
        } }
    });
    n.__model = note;
    n.is = function (other) { return !!other && other.__model === note; };
    return n;
}

function tieWrapper(note) {
    var tie = base(TYPES.TIE, "Tie", {});
    tie.parent = note;
    return tie;
}

function selectionWrapper(model) {
    var sel = model.selection, selection = {};
    Object.defineProperties(selection, {
        isRange: { get: function () { return !!sel; } },
        startStaff: { get: function () { return sel ? sel.startStaff : 0; } },
        endStaff: { get: function () { return sel ? sel.endStaff : 0; } },
        startSegment: { get: function () { return sel ? segmentWrapper(model, sel.startTick) : null; } },
        endSegment: { get: function () {
            return sel && sel.endTick < model.end() ? segmentWrapper(model, sel.endTick) : null;
        } },
        elements: { get: function () {
            var found = [];
            for (var i = 0; sel && i < model.crs.length; i++) {
                var cr = model.crs[i], staff = Math.floor(cr.track / 4);
                if (cr.tick < sel.startTick || cr.tick >= sel.endTick || staff < sel.startStaff || staff >= sel.endStaff) continue;
                if (!cr.notes) { found.push(crWrapper(model, cr)); continue; }
                for (var k = 0; k < cr.notes.length; k++) found.push(noteWrapper(model, cr, cr.notes[k]));
            }
            return list(found);
        } }
    });
    return selection;
}

// What the plug-in's API object does with elements it did not get from the score.
function newElement(model, type) {
    Harness.record("newElement", [type]);
    var e = base(type, "Element", {});
    e.text = "";
    e.pitch = 60;
    return e;
}

function removeElement(model, element) {
    Harness.record("removeElement", [element]);
    var target = element.__model;
    if (element.type === TYPES.HARMONY) {
        model.harmonies = model.harmonies.filter(function (h) { return h !== target; });
    } else if (element.type === TYPES.CHORD) {
        target.notes = null;                                    // a chord leaves a rest
    } else if (element.type === TYPES.REST && target.track % 4) {
        model.crs = model.crs.filter(function (cr) { return cr !== target; });   // voices 2-4: gone
    }
}

// A user's edit while the plug-in waits: the note at `tick` of `track` gets `pitch`.
function userEdit(model, edit) {
    var cr = model.crAt(edit.track, edit.tick);
    if (cr && cr.notes) cr.notes[0].pitch = edit.pitch;
    else if (cr) cr.notes = [{ pitch: edit.pitch, tpc1: spelling(edit.pitch, 0), tpc2: spelling(edit.pitch, 0), tie: false }];
}
