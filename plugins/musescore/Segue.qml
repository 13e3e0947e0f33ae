//=============================================================================
//  Segue for MuseScore 3.2+ and 4.4+ — select bars, click Continue.
//
//  Segue's music model writes the next bars right after the selection, in the
//  same staves; Fill writes the selected bars anew, and Add part writes a new
//  part for them into an empty staff (or chord symbols above them). It needs the Segue server on this computer; when none answers,
//  the plug-in starts one (`segue serve --detach`) from where `segue
//  install-plugins` recorded Segue to be (segue-launch.json beside this file),
//  and that server stops by itself after 30 minutes unused.
//
//  One file serves both versions. MuseScore 4.4 reads the `//4.4` comment lines
//  below; MuseScore 3 refuses a plug-in whose header sets title, categoryCode or
//  thumbnailName, so those fields live in comments only. MuseScore 4 has no
//  Qt.labs.settings and MuseScore 3 has no Settings of its own, so the settings
//  object is made at run time from whichever exists. Features that came after
//  3.2 are detected and, where missing, replaced (see capabilities()).
//
//  Batch mode (scripts and tests; MuseScore 3, whose `mscore3 -p` runs a plug-in
//  without a window): SEGUE_PLUGIN_BATCH=job.json mscore3 -p Segue.qml score.mscz
//  with job.json = {"server": URL, "staff": S, "last_staff": S2, "first_measure": M,
//  "last_measure": N, "bars": K, "seed": X, "output": PATH} (bars of the score counted
//  from 1, staves from 0; last_staff, seed, temperature, top_p, model and idle_exit,
//  the minutes a server it starts stays unused, optional; "action": "fill" fills those
//  bars, "action": "accompany" with "add" (bass, voice, chords) and "into_staff" adds a part).
//  It continues (fills, accompanies) those bars, saves the score to PATH (format by extension, e.g.
//  .musicxml) and quits; on an error it writes PATH.error with the message instead.
//=============================================================================

import QtQuick 2.9
import FileIO 3.0
import MuseScore 3.0

MuseScore {
    id: segue
    version: "0.1.0"
    description: "Continue, fill or add a part to the selected bars with Segue's music model. Segue starts by itself once `segue install-plugins` has run."
    menuPath: "Plugins.Continue with Segue…"
    pluginType: "dialog"
    requiresScore: true
    width: 400
    height: 430

    //4.4 title: "Segue: Continue"
    //4.4 categoryCode: "composing-arranging-tools"

    readonly property string defaultServer: "http://127.0.0.1:8765"
    readonly property int requestTimeoutMs: 300000
    readonly property int startTimeoutMs: 300000
    readonly property real idleMinutes: 30
    readonly property int fillContext: 4               // bars on each side a Fill sends
    readonly property var parts: ({ bass: "a bass line", voice: "a second voice", chords: "chord symbols" })
    property string part: "bass"                       // what Add part writes: a key of parts
    property bool busy: false
    property bool failed: false
    property string status: ""
    property var settings: null

    // Settings kept between runs: MuseScore 4's own Settings type, else Qt.labs.settings
    // (MuseScore 3), else defaults for this run only.
    function makeSettings() {
        var body = "Settings { category: \"Segue\"; property int bars: 4; property real temperature: 1.0; "
                   + "property string seed: \"\"; property string model: \"\"; property string server: \"\"; "
                   + "property string part: \"bass\"; property string into: \"\" }";
        var modules = ["import MuseScore 3.0\n", "import Qt.labs.settings 1.0\n"];
        for (var i = 0; i < modules.length; i++) {
            try { return Qt.createQmlObject(modules[i] + body, segue, "SegueSettings"); } catch (e) {}
        }
        return { bars: 4, temperature: 1.0, seed: "", model: "", server: "", part: "bass", into: "" };
    }

    FileIO { id: file }

    // ---------------------------------------------------------------- fractions
    // Times are exact fractions of a whole note, {n, d} in lowest terms.

    function gcd(a, b) {
        a = Math.abs(a); b = Math.abs(b);
        while (b) { var t = a % b; a = b; b = t; }
        return a || 1;
    }
    function frac(n, d) {
        var g = gcd(n, d) * (d < 0 ? -1 : 1);
        return { n: n / g, d: d / g };
    }
    function plus(a, b) { return frac(a.n * b.d + b.n * a.d, a.d * b.d); }
    function minus(a, b) { return frac(a.n * b.d - b.n * a.d, a.d * b.d); }
    function times(a, b) { return frac(a.n * b.n, a.d * b.d); }
    function cmp(a, b) { return a.n * b.d - b.n * a.d; }
    function fracText(f) { return f.n + "/" + f.d; }
    function isDyadic(f) { return (f.d & (f.d - 1)) === 0; }
    function toTicks(f) { return Math.round(f.n * division * 4 / f.d); }
    function fromTicks(t) { return frac(t, division * 4); }
    function parseFrac(text, what) {
        var parts = String(text).split("/");
        var n = parseInt(parts[0], 10), d = parts.length > 1 ? parseInt(parts[1], 10) : 1;
        if (parts.length > 2 || isNaN(n) || isNaN(d) || d <= 0)
            throw new Error("the server sent " + what + " \"" + text + "\", not a fraction");
        return frac(n, d);
    }
    // The simplest fraction within [lo, hi]: the ratio of a tuplet, from rounded ticks.
    function simplest(lo, hi) {
        for (var d = 1; d <= 64; d++) {
            var n = Math.ceil(lo * d - 1e-9);
            if (n / d <= hi + 1e-9) return frac(n, d);
        }
        return frac(Math.round(lo * 64), 64);
    }
    // Note values MuseScore can write in one go: breve to 128th, plain, dotted, double-dotted.
    function noteValues() {
        var values = [];
        for (var d = 1; d <= 256; d *= 2) {
            var base = frac(2, d);
            values.push(times(base, frac(7, 4)), times(base, frac(3, 2)), base);
        }
        return values;
    }

    // ------------------------------------------------------------------- score

    // Every bar: start and end tick, nominal meter.
    function scoreMeasures() {
        var list = [];
        for (var m = curScore.firstMeasure; m; m = m.nextMeasure) {
            var start = m.firstSegment.tick;
            list.push({ start: start, end: start + m.timesigActual.ticks, actual: m.timesigActual,
                        nominal: m.timesigNominal, nominalTicks: m.timesigNominal.ticks });
        }
        return list;
    }
    function measureIndexAt(measures, tick) {
        for (var i = 0; i < measures.length; i++)
            if (tick < measures[i].end) return i;
        return measures.length - 1;
    }

    // The bars a selection touches: {start, end, firstStaff, lastStaff, measures, first, last}.
    function selectedRange() {
        var measures = scoreMeasures();
        var c = curScore.newCursor();
        c.rewind(1);                                   // selection start
        var start, end, firstStaff, lastStaff;
        if (c.segment) {                               // a range selection
            start = c.tick; firstStaff = c.staffIdx;
            c.rewind(2);                               // selection end; none at the score's end
            end = c.segment ? c.tick : measures[measures.length - 1].end;
            lastStaff = c.staffIdx;
        } else {                                       // single notes or rests clicked
            var elements = curScore.selection.elements;
            for (var i = 0; i < elements.length; i++) {
                var e = elements[i], tick = segmentTick(e);
                if (tick === null) continue;
                var staff = Math.floor(e.track / 4);
                if (start === undefined || tick < start) start = tick;
                if (end === undefined || tick + 1 > end) end = tick + 1;
                if (firstStaff === undefined || staff < firstStaff) firstStaff = staff;
                if (lastStaff === undefined || staff > lastStaff) lastStaff = staff;
            }
            if (start === undefined) return null;
        }
        var first = measureIndexAt(measures, start), last = measureIndexAt(measures, Math.max(start, end - 1));
        return { start: measures[first].start, end: measures[last].end, firstStaff: firstStaff,
                 lastStaff: Math.max(firstStaff, lastStaff), measures: measures, first: first, last: last };
    }
    function segmentTick(element) {
        for (var e = element; e; e = e.parent)
            if (e.type === Element.SEGMENT) return e.tick;
        return null;
    }

    // ------------------------------------------------------------- the request

    // The selection as Segue's events: meter, key, each staff's notes and rests, and the
    // chord symbols of the selected staves.
    function readEvents(range) {
        var c = curScore.newCursor();
        c.staffIdx = range.firstStaff; c.voice = 0; c.rewind(0);
        while (c.segment && c.tick < range.start) c.next();
        var key = c.keySignature - transposition(range.firstStaff, range.start);
        key = key > 7 ? key - 12 : key < -7 ? key + 12 : key;
        var bar = range.measures[range.first];
        var pickup = minus(fromTicks(bar.nominalTicks), fromTicks(bar.end - bar.start));
        var tied = tiedNotes();
        var staves = [];
        for (var staff = range.firstStaff; staff <= range.lastStaff; staff++) {
            var events = [];
            for (var voice = 0; voice < 4; voice++) {
                var voiceEvents = readTrack(staff, voice, range, tied);
                // a short first bar (a pickup) is sent as a full bar that begins with a rest
                // (no unshift/concat: Qt 5's JavaScript engine loses such arrays' items)
                if (pickup.n > 0 && voiceEvents.length)
                    events.push({ onset: "0/1", duration: fracText(pickup), pitches: [], tie: false, voice: voice });
                for (var i = 0; i < voiceEvents.length; i++) {
                    var e = voiceEvents[i];
                    e.onset = fracText(plus(e.onset, pickup));
                    e.duration = fracText(e.duration);
                    events.push(e);
                }
            }
            staves.push(events);
        }
        var doc = { time_signature: bar.nominal.numerator + "/" + bar.nominal.denominator, key: key, staves: staves };
        var chords = readChords(range, pickup);
        if (chords.length) doc.chords = chords;
        return doc;
    }

    // How far a staff's written notes are from concert pitch, in fifths (0 unless its
    // instrument transposes), told by its notes: the first chord from `tick` on, else the
    // last before it (a selection of rests has none of its own).
    function transposition(staff, tick) {
        var before = 0;
        for (var voice = 0; voice < 4; voice++) {
            var c = curScore.newCursor();
            c.staffIdx = staff; c.voice = voice; c.rewind(0);
            for (; c.segment; c.next()) {
                if (!c.element || c.element.type !== Element.CHORD) continue;
                var shift = c.element.notes[0].tpc - c.element.notes[0].tpc1;
                if (c.tick >= tick) return shift;
                before = shift;
            }
        }
        return before;
    }

    // Every segment of the score from `from` up to `to` (ticks), in order.
    function segmentsBetween(from, to) {
        var segments = [];
        var c = curScore.newCursor();
        c.rewind(0);
        for (var seg = c.segment; seg && seg.tick < to; seg = seg.next)
            if (seg.tick >= from) segments.push(seg);
        return segments;
    }

    // The chord symbols (harmony annotations) of the selected staves within [from, to).
    function harmonies(range, from, to) {
        var found = [], segments = segmentsBetween(from, to);
        for (var i = 0; i < segments.length; i++) {
            var annotations = segments[i].annotations;
            for (var k = 0; annotations && k < annotations.length; k++) {
                var a = annotations[k], staff = Math.floor(a.track / 4);
                if (a.type === Element.HARMONY && staff >= range.firstStaff && staff <= range.lastStaff)
                    found.push({ element: a, tick: segments[i].tick, staff: staff });
            }
        }
        return found;
    }

    // The chord symbols of the selection as {staff, onset, symbol}, onsets counted as the
    // events' are. A symbol without text (one MuseScore 3 imported from MusicXML in this
    // session and has not saved yet) cannot be read, and is left out.
    function readChords(range, pickup) {
        var chords = [], found = harmonies(range, range.start, range.end);
        for (var i = 0; i < found.length; i++) {
            var symbol = String(found[i].element.text || "").trim();
            if (symbol)
                chords.push({ staff: found[i].staff - range.firstStaff, symbol: symbol,
                              onset: fracText(plus(fromTicks(found[i].tick - range.start), pickup)) });
        }
        return chords;
    }

    // The bars the answer fills: those after the selection, then new ones in the last bar's
    // meter. {meters: ["3/4", ...], ticks: [...], span (whole notes), append}.
    function targetBars(range, bars) {
        var measures = range.measures, last = measures[measures.length - 1];
        var meters = [], ticks = [], span = frac(0, 1);
        for (var k = 0; k < bars; k++) {
            var m = measures[range.last + 1 + k], length, meter;
            if (m) {
                length = m.end - m.start;
                meter = m.actual.numerator + "/" + m.actual.denominator;
            } else {
                length = last.nominalTicks;
                meter = last.nominal.numerator + "/" + last.nominal.denominator;
            }
            meters.push(meter);
            ticks.push(length);
            span = plus(span, fromTicks(length));
        }
        return { meters: meters, ticks: ticks, span: span,
                 append: Math.max(0, range.last + bars - (measures.length - 1)) };
    }

    // What writing the answer relies on: every bar's place and meter, and what the bars it
    // fills hold in the selected staves. An edit there while the answer is on its way (the
    // dialog does not block the score) changes it.
    function fingerprint(range, target) {
        var parts = [], measures = scoreMeasures(), until = range.end + toTicks(target.span);
        for (var i = 0; i < measures.length; i++)
            parts.push(measures[i].start + "+" + (measures[i].end - measures[i].start) + ":"
                       + measures[i].nominal.numerator + "/" + measures[i].nominal.denominator);
        for (var staff = range.firstStaff; staff <= range.lastStaff; staff++) {
            for (var voice = 0; voice < 4; voice++) {
                var c = curScore.newCursor();
                c.staffIdx = staff; c.voice = voice; c.rewind(0);
                for (; c.segment && c.tick < until; c.next()) {
                    if (c.tick < range.end || !c.element) continue;
                    var e = c.element, text = staff + "/" + voice + "@" + c.tick + ":" + e.type + ":" + e.duration.ticks;
                    if (e.type === Element.CHORD)
                        for (var k = 0; k < e.notes.length; k++) text += ":" + e.notes[k].pitch;
                    parts.push(text);
                }
            }
        }
        var chords = harmonies(range, range.end, until);
        for (i = 0; i < chords.length; i++) parts.push(chords[i].staff + "@" + chords[i].tick + ":" + chords[i].element.text);
        return parts.join(",");
    }

    // Notes tied forward, for MuseScore < 3.3, whose notes cannot tell: the ties among
    // the selected elements (a tie's parent is the note it starts from).
    function tiedNotes() {
        var set = {}, elements = curScore.selection.elements;
        for (var i = 0; i < elements.length; i++) {
            var tie = elements[i];
            if (tie.type !== Element.TIE || !tie.parent || tie.parent.type !== Element.NOTE) continue;
            var chord = tie.parent.parent;
            set[chord.track + ":" + chord.parent.tick + ":" + tie.parent.pitch] = true;
        }
        return set;
    }

    // One voice of one staff inside the range, with exact onsets and durations: MuseScore
    // gives each chord's written value; the ticks to the next one reveal tuplets.
    function readTrack(staff, voice, range, tied) {
        var c = curScore.newCursor();
        c.staffIdx = staff; c.voice = voice; c.rewind(0);
        var items = [];
        while (c.segment && c.tick < range.end) {
            if (c.tick >= range.start && c.element) items.push({ tick: c.tick, element: c.element });
            c.next();
        }
        var events = [], previous = null;
        for (var i = 0; i < items.length; i++) {
            var item = items[i], e = item.element, written = e.duration;
            var nominal = frac(written.numerator, written.denominator), nominalTicks = toTicks(nominal);
            var bar = range.measures[measureIndexAt(range.measures, item.tick)];
            var limit = Math.min(i + 1 < items.length ? items[i + 1].tick : range.end, bar.end);
            var span = limit - item.tick, ratio = frac(1, 1);
            if (Math.abs(span - nominalTicks) >= 1) {
                if (span < nominalTicks || voice === 0)      // a tuplet (the first voice has no gaps)
                    ratio = simplest((span - 0.5) / nominalTicks, (span + 0.5) / nominalTicks);
                else if (previous && previous.end === item.tick && cmp(previous.ratio, frac(1, 1)) !== 0)
                    ratio = previous.ratio;                  // the last note of a tuplet, then a gap
            }
            var length = times(nominal, ratio), offset = fromTicks(item.tick - range.start);
            if (previous && Math.abs(toTicks(previous.until) - toTicks(offset)) < 1)
                offset = previous.until;                     // keep tuplet onsets exact
            var pitches = [], tie = false;
            if (e.type === Element.CHORD) {
                for (var k = 0; k < e.notes.length; k++) {
                    var note = e.notes[k];
                    pitches.push(note.pitch);
                    if (note.tieForward !== undefined) tie = tie || !!note.tieForward;
                    else tie = tie || !!tied[e.track + ":" + item.tick + ":" + note.pitch];
                }
                pitches.sort(function (a, b) { return a - b; });
            }
            events.push({ onset: offset, duration: length, pitches: pitches,
                          tie: tie, voice: voice });
            previous = { end: item.tick + toTicks(length), until: plus(offset, length), ratio: ratio };
        }
        return events;
    }

    function serverUrl(address) {
        var url = String(address || defaultServer).trim();
        if (url.indexOf("://") < 0) url = "http://" + url;
        return url.replace(/\/+$/, "");
    }

    // POST the request; `done(status, text)`. Batch mode must wait for the answer
    // (asynchronous callbacks never run there), the dialog must not.
    function post(url, body, wait, done, path) {
        var xhr = new XMLHttpRequest();
        xhr.open("POST", url + (path || "/v1/continue"), !wait);
        xhr.setRequestHeader("Content-Type", "application/json");
        if (!wait) {
            xhr.onreadystatechange = function () {
                if (xhr.readyState === XMLHttpRequest.DONE && timeout.running) {
                    timeout.stop();
                    done(xhr.status, xhr.responseText);
                }
            };
            timeout.xhr = xhr;
            timeout.done = done;
            timeout.restart();
        }
        xhr.send(JSON.stringify(body));
        if (wait) done(xhr.status, xhr.responseText);
    }

    Timer {
        id: timeout
        property var xhr: null
        property var done: null
        interval: segue.requestTimeoutMs
        onTriggered: {
            var callback = timeout.done;
            timeout.xhr.abort();
            callback(-1, "");
        }
    }

    // ---------------------------------------------------- starting the server

    // POST the request; when nothing answers at an address of this computer, start Segue
    // and ask once more. `done(status, text)`; status -2: Segue could not be started (text).
    function ask(url, body, options, done) {
        post(url, body, options.wait, function (status, text) {
            if (status !== 0 || !isLocal(url)) return done(status, text);
            startServer(url, options, function (error) {
                if (error) return done(-2, error);
                report("Asking Segue for " + options.bars + (options.bars === 1 ? " bar" : " bars") + "…", false);
                post(url, body, options.wait, done, options.path);
            });
        }, options.path);
    }

    function isLocal(url) {
        return /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(url);
    }

    // Start `segue serve --detach` from where `segue install-plugins` recorded Segue; it
    // prints a first line at once, then where the server runs (once it answers) or why it
    // did not start. `done(error)`, error null once Segue answers.
    function startServer(url, options, done) {
        if (fileExists("/.flatpak-info"))
            return done("Segue is not running, and this MuseScore is a Flatpak, which cannot start programs "
                        + "on this computer. Start Segue by hand: open a terminal, run segue serve, then click "
                        + "Continue again.");
        var launch = readLaunch();
        if (!launch)
            return done("Segue is not running at " + url + ", and this plug-in does not know where Segue is "
                        + "installed. Run segue install-plugins once (it records that), or start Segue in a "
                        + "terminal with segue serve, then try again.");
        var process = makeProcess();
        if (!process)
            return done("Segue is not running, and this MuseScore cannot start programs. Start Segue in a "
                        + "terminal with segue serve, then try again.");
        var port = /:(\d+)$/.exec(url), args = [];
        for (var i = 0; i < launch.args.length; i++) args.push(String(launch.args[i]));
        var more = ["serve", "--detach", "--port", port ? port[1] : "80", "--no-osc", "--idle-exit", String(options.idleExit)];
        for (i = 0; i < more.length; i++) args.push(more[i]);
        if (typeof process.startWithArgs === "function") process.startWithArgs(launch.program, args);
        else process.start(commandLine(launch.program, args));      // MuseScore 3: a command line
        var finished = function (output) {
            if (/^segue serve: (already )?running/m.test(output)) return done(null);
            var lines = output.trim().split("\n"), last = lines[lines.length - 1].replace(/^segue serve: (error: )?/, "");
            done(last ? "Segue could not start: " + last
                      : "Segue could not start: " + launch.program + " did not run. Run segue install-plugins again, "
                        + "or start Segue in a terminal with segue serve.");
        };
        if (options.wait) {                                      // batch mode: nothing runs meanwhile
            process.waitForFinished(startTimeoutMs);
            return finished(bytesText(process.readAllStandardOutput()));
        }
        report("Starting Segue… The first start takes a few seconds.", false);
        starter.process = process;
        starter.output = "";
        starter.done = finished;
        starter.since = Date.now();
        starter.start();
    }

    // Reads what the starting command prints, without blocking the dialog.
    Timer {
        id: starter
        property var process: null
        property string output: ""
        property var done: null
        property real since: 0
        interval: 250
        repeat: true
        onTriggered: {
            starter.output += segue.bytesText(starter.process.readAllStandardOutput());
            var waited = Date.now() - starter.since, callback = starter.done;
            if (!/^segue serve: ((already )?running|error)/m.test(starter.output)
                    && !(starter.output === "" && waited > 60000) && waited < segue.startTimeoutMs)
                return;                                          // nothing printed in a minute: it did not run
            starter.stop();
            callback(starter.output);
        }
    }

    // {program, args} recorded by `segue install-plugins` beside this file, or null.
    function readLaunch() {
        var path = decodeURIComponent(String(Qt.resolvedUrl("segue-launch.json")).replace(/^file:\/\//, ""));
        if (/^\/[A-Za-z]:\//.test(path)) path = path.substring(1);      // Windows: /C:/...
        if (!fileExists(path)) return null;
        var launch;
        try { launch = JSON.parse(file.read()); } catch (e) { return null; }
        return launch && typeof launch.program === "string" && launch.args instanceof Array ? launch : null;
    }

    function fileExists(path) {
        file.source = path;
        return file.exists();
    }

    function makeProcess() {
        try { return Qt.createQmlObject("import MuseScore 3.0\nQProcess {}", segue, "SegueProcess"); } catch (e) {}
        return null;
    }

    // A command line for MuseScore 3's start(): arguments with spaces in double quotes.
    function commandLine(program, args) {
        var words = [program];
        for (var i = 0; i < args.length; i++) words.push(args[i]);
        for (i = 0; i < words.length; i++)
            if (/[\s"]/.test(words[i])) words[i] = "\"" + words[i].replace(/"/g, "\"\"\"") + "\"";
        return words.join(" ");
    }

    // A QByteArray as MuseScore hands it to QML (an ArrayBuffer) as text.
    function bytesText(data) {
        if (typeof data === "string") return data;
        var bytes = new Uint8Array(data), text = "";
        for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
        try { return decodeURIComponent(escape(text)); } catch (e) { return text; }
    }

    // The continuation's events from the server's answer, or an Error in plain words.
    function answerEvents(url, status, text) {
        if (status === 0)
            throw new Error("Segue is not running at " + url + ". Start it there with the command "
                            + "segue serve, then try again.");
        if (status === -2)
            throw new Error(text);
        if (status === -1)
            throw new Error("Segue did not answer within " + requestTimeoutMs / 1000 + " seconds.");
        var answer;
        try { answer = JSON.parse(text); } catch (e) {
            throw new Error("The server at " + url + " did not answer like Segue (HTTP " + status
                            + "). Is the address right?");
        }
        if (answer && answer.error)
            throw new Error((answer.error.code === "busy" ? "Segue is busy: " : "Segue could not continue these bars: ")
                            + answer.error.message);
        if (status >= 400 || !answer || !answer.events || !(answer.events.staves instanceof Array))
            throw new Error("Segue's answer (HTTP " + status + ") has no notes in it.");
        return answer.events;
    }

    // --------------------------------------------------------------- the answer

    // What this MuseScore can do beyond 3.2 (3.3.4: chords in one call; 3.5: rests, tuplets).
    function capabilities() {
        var c = curScore.newCursor();
        return { addToChord: mscoreMajorVersion > 3 || mscoreVersion >= 30304,
                 addRest: typeof c.addRest === "function",
                 addTuplet: typeof c.addTuplet === "function" };
    }

    // The events of one voice as steps MuseScore can write, times from the first new bar:
    // tied notes merged, gaps filled with rests, tuplets kept (or rounded to plain values
    // where MuseScore cannot write them), values split into ones MuseScore can write.
    function planVoice(events, barlines, caps) {
        var notes = [], i;
        events.sort(function (a, b) { return cmp(a.onset, b.onset); });
        for (i = 0; i < events.length; i++) {
            var e = events[i], last = notes[notes.length - 1];
            var lastEnd = last ? plus(last.onset, last.duration) : frac(0, 1);
            if (cmp(e.onset, lastEnd) < 0) continue;                       // overlaps: dropped
            if (cmp(e.onset, lastEnd) > 0)
                notes.push({ onset: lastEnd, duration: minus(e.onset, lastEnd), pitches: [], tpcs: [], tie: false });
            else if (last && last.tie && e.pitches.length && String(last.pitches) === String(e.pitches)) {
                last.duration = plus(last.duration, e.duration);           // a tie: one longer note
                last.tie = e.tie;
                continue;
            }
            notes.push(e);
        }
        var steps = [];
        for (i = 0; i < notes.length; i++) {
            if (isDyadic(notes[i].onset) && isDyadic(notes[i].duration)) {
                pushValues(steps, notes[i], barlines);
                continue;
            }
            var group = [notes[i]];                    // a tuplet: up to the next plain point
            while (!isDyadic(plus(notes[i].onset, notes[i].duration)) && i + 1 < notes.length)
                group.push(notes[++i]);
            var tuplet = caps.addTuplet ? tupletOf(group, barlines) : null;
            if (tuplet) {
                for (var k = 0; k < group.length; k++)
                    steps.push({ onset: group[k].onset, duration: group[k].duration, pitches: group[k].pitches,
                                 tpcs: group[k].tpcs, value: times(group[k].duration, tuplet.scale),
                                 tuplet: k === 0 ? tuplet : null });
            } else {
                var plain = rounded(group);
                for (k = 0; k < plain.length; k++) pushValues(steps, plain[k], barlines);
            }
        }
        return steps;
    }

    // A note as written values, largest first; a rest is cut at barlines too. MuseScore
    // itself ties a note value that crosses a barline.
    function pushValues(steps, note, barlines) {
        var values = noteValues(), at = note.onset, left = note.duration;
        while (cmp(left, frac(0, 1)) > 0) {
            var room = left;
            if (!note.pitches.length)
                for (var b = 0; b < barlines.length; b++)
                    if (cmp(barlines[b], at) > 0) {
                        if (cmp(minus(barlines[b], at), room) < 0) room = minus(barlines[b], at);
                        break;
                    }
            var value = null;
            for (var v = 0; v < values.length && !value; v++)
                if (cmp(values[v], room) <= 0) value = values[v];
            if (!value) return;                                        // shorter than a 256th
            steps.push({ onset: at, duration: value, pitches: note.pitches, tpcs: note.tpcs, value: value, tuplet: null });
            at = plus(at, value); left = minus(left, value);
        }
    }

    // {ratio, span, scale} of a tuplet group MuseScore can write, or null.
    function tupletOf(group, barlines) {
        var start = group[0].onset, end = plus(group[group.length - 1].onset, group[group.length - 1].duration);
        var span = minus(end, start), odd = 1, i;
        if (!isDyadic(end)) return null;
        for (i = 0; i < group.length; i++) {
            var d = minus(group[i].onset, start).d * group[i].duration.d / gcd(minus(group[i].onset, start).d, group[i].duration.d);
            while (d % 2 === 0) d /= 2;
            odd = odd * d / gcd(odd, d);
        }
        var normal = 1;
        while (normal * 2 < odd) normal *= 2;
        var scale = frac(odd, normal), values = noteValues();
        for (var b = 0; b < barlines.length; b++)
            if (cmp(barlines[b], start) > 0 && cmp(barlines[b], end) < 0) return null;
        var ok = function (f) {
            for (var v = 0; v < values.length; v++) if (cmp(values[v], f) === 0) return true;
            return false;
        };
        if (!ok(times(span, frac(1, normal)))) return null;
        for (i = 0; i < group.length; i++) if (!ok(times(group[i].duration, scale))) return null;
        return { ratio: frac(odd, normal), span: span, scale: scale };
    }

    // A tuplet group rounded to plain values (for MuseScore < 3.5, which cannot add tuplets):
    // each onset moves to the nearest point of a grid fine enough for the group.
    function rounded(group) {
        var start = group[0].onset, last = group[group.length - 1];
        var end = plus(last.onset, last.duration), grid = frac(1, 64);
        while (cmp(grid, frac(1, 16)) < 0 && cmp(times(grid, frac(group.length * 2, 1)), minus(end, start)) < 0)
            grid = times(grid, frac(2, 1));
        var snap = function (f) { return times(grid, frac(Math.round((f.n / f.d) / (grid.n / grid.d)), 1)); };
        var bounds = [start], i;
        for (i = 1; i < group.length; i++) {
            var at = snap(group[i].onset);
            bounds.push(cmp(at, bounds[i - 1]) < 0 ? bounds[i - 1] : at);    // never backwards
        }
        var stop = isDyadic(end) ? end : snap(end);
        bounds.push(cmp(stop, bounds[group.length - 1]) < 0 ? bounds[group.length - 1] : stop);
        var out = [];
        for (i = 0; i < group.length; i++)
            if (cmp(bounds[i + 1], bounds[i]) > 0)
                out.push({ onset: bounds[i], duration: minus(bounds[i + 1], bounds[i]), pitches: group[i].pitches,
                           tpcs: group[i].tpcs, tie: false });
        return out;
    }

    // Check the answer and plan every voice and chord symbol; nothing in the score changes
    // here. The bars asked for (`target`, see targetBars) bound it: whatever an answer holds
    // past them is no bar that was asked for, and is not written.
    function planAnswer(range, doc, caps, target) {
        var staves = doc.staves, voices = [], end = frac(0, 1), span = target.span;
        var count = range.lastStaff - range.firstStaff + 1;
        if (staves.length > count)
            throw new Error("Segue answered with " + staves.length + " staves for " + count + " selected.");
        for (var s = 0; s < staves.length; s++) {
            var byVoice = [[], [], [], []];
            if (!(staves[s] instanceof Array)) throw new Error("Segue's answer is malformed (staff " + s + ").");
            for (var i = 0; i < staves[s].length; i++) {
                var e = staves[s][i], voice = e.voice === undefined ? 0 : e.voice;
                var pitches = e.pitches || [], tpcs = e.tpcs || [];
                if (voice !== 0 && voice !== 1 && voice !== 2 && voice !== 3)
                    throw new Error("Segue's answer names voice " + voice + ".");
                for (var p = 0; p < pitches.length; p++)
                    if (!(pitches[p] >= 0 && pitches[p] <= 127)) throw new Error("Segue's answer has pitch " + pitches[p] + ".");
                var onset = parseFrac(e.onset, "onset"), duration = parseFrac(e.duration, "duration");
                if (onset.n < 0 || duration.n <= 0) throw new Error("Segue's answer has an event at " + e.onset + " lasting " + e.duration + ".");
                if (cmp(onset, span) >= 0) continue;
                var over = cmp(plus(onset, duration), span) > 0;
                if (over) duration = minus(span, onset);
                byVoice[voice].push({ onset: onset, duration: duration, pitches: pitches, tpcs: tpcs, tie: !!e.tie && !over });
                if (cmp(plus(onset, duration), end) > 0) end = plus(onset, duration);
            }
            for (var v = 0; v < 4; v++)
                if (byVoice[v].length) voices.push({ staff: range.firstStaff + s, voice: v, events: byVoice[v] });
        }
        if (!voices.length && !(doc.chords instanceof Array && doc.chords.length))
            throw new Error("Segue's answer has no notes in it.");
        var chords = doc.chords === undefined ? null : planChords(range, doc.chords, span);
        // bars after the selection: those the score has, then those to append
        var measures = range.measures, last = measures[measures.length - 1];
        var need = range.end + toTicks(end), append = 0, barlines = [];
        if (need > last.end) append = Math.ceil((need - last.end) / last.nominalTicks);
        for (var m = range.last + 1; m < measures.length; m++) barlines.push(fromTicks(measures[m].start - range.end));
        for (var a = 0; a <= append; a++) barlines.push(fromTicks(last.end + a * last.nominalTicks - range.end));
        for (v = 0; v < voices.length; v++) voices[v].steps = planVoice(voices[v].events, barlines, caps);
        return { voices: voices, staves: staves.length, append: append, ticks: toTicks(end),
                 scoreEnd: last.end + append * last.nominalTicks, chords: chords, spanTicks: toTicks(span) };
    }

    // The answer's chord symbols as {staff, tick, symbol}, checked (those past `span` dropped).
    function planChords(range, chords, span) {
        if (!(chords instanceof Array)) throw new Error("Segue's answer is malformed (chords).");
        var planned = [], count = range.lastStaff - range.firstStaff + 1;
        for (var i = 0; i < chords.length; i++) {
            var chord = chords[i], onset = parseFrac(chord.onset, "a chord's onset");
            if (!(chord.staff >= 0 && chord.staff < count && chord.staff % 1 === 0))
                throw new Error("Segue's answer puts a chord symbol on staff " + chord.staff + ".");
            if (typeof chord.symbol !== "string" || !chord.symbol.trim() || chord.symbol.length > 64)
                throw new Error("Segue's answer has a chord symbol that is no text.");
            if (onset.n < 0) throw new Error("Segue's answer has a chord symbol at " + chord.onset + ".");
            if (cmp(onset, span) < 0)
                planned.push({ staff: range.firstStaff + chord.staff, tick: range.end + toTicks(onset),
                               symbol: chord.symbol.trim() });
        }
        return planned;
    }

    // Chord symbols into the new bars, like a paste: the ones those bars held in the selected
    // staves go. A symbol goes where a note or rest of its staff starts (else it is left out).
    function writeChords(range, plan) {
        var old = harmonies(range, range.end, range.end + plan.spanTicks);
        for (var i = 0; i < old.length; i++) removeElement(old[i].element);
        for (i = 0; i < plan.chords.length; i++) {
            var chord = plan.chords[i], c = cursorAt(chord.staff, chord.tick);
            if (!c) continue;
            var harmony = newElement(Element.HARMONY);
            harmony.text = chord.symbol;
            c.add(harmony);
        }
    }

    // A cursor on a note or rest of `staff` that starts at `tick` (any voice), or null.
    function cursorAt(staff, tick) {
        for (var voice = 0; voice < 4; voice++) {
            var c = curScore.newCursor();
            c.staffIdx = staff; c.voice = voice; c.rewind(0);
            while (c.segment && c.tick < tick) c.next();
            if (c.segment && c.tick === tick) return c;
        }
        return null;
    }

    // Write the planned answer after the range as one undoable command.
    function writeAnswer(range, doc, target) {
        var caps = capabilities();
        var plan = planAnswer(range, doc, caps, target);
        curScore.startCmd();
        try {
            if (plan.append) curScore.appendMeasures(plan.append);
            var written = {};
            for (var v = 0; v < plan.voices.length; v++) {
                writeVoice(plan.voices[v], range.end, plan.scoreEnd, caps);
                respell(plan.voices[v], range.end, plan.ticks, caps);
                written[plan.voices[v].staff * 4 + plan.voices[v].voice] = true;
            }
            // like a paste: voices 2-4 the answer leaves empty are emptied in the new bars
            for (var staff = range.firstStaff; staff < range.firstStaff + plan.staves; staff++)
                for (var voice = 1; voice < 4; voice++)
                    if (!written[staff * 4 + voice]) clearVoice(staff, voice, range.end, range.end + plan.ticks);
            if (plan.chords) writeChords(range, plan);
            var c = curScore.newCursor();             // MuseScore 3.2 shares the note input voice
            c.staffIdx = range.firstStaff; c.voice = 0;
        } catch (e) {
            curScore.endCmd(true);                    // roll back (MuseScore 3.2 included)
            throw e;
        }
        curScore.endCmd();
    }

    function writeVoice(plan, target, scoreEnd, caps) {
        var c = curScore.newCursor();
        c.staffIdx = plan.staff; c.voice = 0; c.rewind(0);
        // walk with next(): nextMeasure() then addNote() writes into bar 1 on MuseScore 3.2
        while (c.segment && c.tick < target) c.next();
        if (!c.segment || c.tick !== target) throw new Error("Could not find the bar after the selection.");
        c.voice = plan.voice;
        for (var i = 0; i < plan.steps.length; i++) {
            var step = plan.steps[i], expected = target + toTicks(plus(step.onset, step.duration));
            if (step.tuplet) c.addTuplet(fraction(step.tuplet.ratio.n, step.tuplet.ratio.d),
                                         fraction(step.tuplet.span.n, step.tuplet.span.d));
            c.setDuration(step.value.n, step.value.d);
            if (!step.pitches.length && caps.addRest) {
                c.addRest();
            } else {
                // a rest without addRest(): a stand-in note, removed by respell()
                c.addNote(step.pitches.length ? step.pitches[0] : 60);
                if (caps.addToChord)
                    for (var p = 1; p < step.pitches.length; p++) c.addNote(step.pitches[p], true);
            }
            if (expected < scoreEnd && (!c.segment || Math.abs(c.tick - expected) > 1))
                throw new Error("MuseScore put a note at tick " + c.tick + " instead of " + expected + ".");
        }
    }

    function clearVoice(staff, voice, from, to) {
        for (var round = 0; round < 2; round++) {          // a chord becomes a rest, a rest goes
            var found = [];
            var c = curScore.newCursor();
            c.staffIdx = staff; c.voice = voice; c.rewind(0);
            for (; c.segment && c.tick < to; c.next())
                if (c.tick >= from && c.element) found.push(c.element);
            for (var i = 0; i < found.length; i++) removeElement(found[i]);
        }
    }

    // Second pass over the written voice: spell each note with the server's tpc, add the
    // other notes of chords (MuseScore < 3.3.4), and turn stand-in notes into rests.
    function respell(plan, target, ticks, caps) {
        var c = curScore.newCursor();
        c.staffIdx = plan.staff; c.voice = plan.voice; c.rewind(0);
        while (c.segment && c.tick < target) c.next();
        var steps = plan.steps, s = 0, standIns = [];
        while (c.segment && c.tick < target + ticks) {
            var at = c.tick - target, e = c.element;
            while (s + 1 < steps.length && toTicks(steps[s + 1].onset) <= at + 1) s++;
            var step = steps[s];
            if (e && e.type === Element.CHORD) {
                if (!step.pitches.length) standIns.push(e);
                else spell(e, step, caps);
            }
            c.next();
        }
        for (var i = 0; i < standIns.length; i++) removeElement(standIns[i]);
    }

    function spell(chord, step, caps) {
        var have = {}, k, note, shift = chord.notes[0].tpc2 - chord.notes[0].tpc1;   // transposition
        for (k = 0; k < chord.notes.length; k++) {
            note = chord.notes[k];
            have[note.pitch] = true;
            var tpc = tpcFor(step, note.pitch);
            if (tpc !== null) {
                note.tpc1 = tpc;
                note.tpc2 = validTpc(tpc + shift);
            }
        }
        if (caps.addToChord) return;
        for (k = 0; k < step.pitches.length; k++) {
            if (have[step.pitches[k]]) continue;
            note = newElement(Element.NOTE);
            note.pitch = step.pitches[k];
            chord.add(note);                          // add() spells the note anew: spell after
            var t = tpcFor(step, step.pitches[k]);
            if (t !== null) { note.tpc1 = t; note.tpc2 = validTpc(t + shift); }
        }
    }

    // A transposed spelling within -1..33 (MuseScore 4 stores any value unchecked): twelve
    // fifths up or down spell the same pitch class (C = B# = Dbb).
    function validTpc(tpc) {
        while (tpc > 33) tpc -= 12;
        while (tpc < -1) tpc += 12;
        return tpc;
    }

    // The tonal pitch class the server chose for a pitch, if it fits the pitch.
    function tpcFor(step, pitch) {
        var i = step.pitches.indexOf(pitch), tpc = i >= 0 ? step.tpcs[i] : undefined;
        if (typeof tpc !== "number" || tpc < -1 || tpc > 33) return null;
        return ((((tpc - 14) * 7) % 12) + 12) % 12 === pitch % 12 ? tpc : null;
    }

    // ------------------------------------------------------------- the pipeline

    // A request's body: `fields` (the music and what to write) and the sampling options.
    function requestBody(options, fields) {
        fields.temperature = options.temperature;
        fields.seed = options.seed;
        fields.variations = 1;
        if (options.top_p !== undefined) fields.top_p = options.top_p;
        if (options.model !== undefined) fields.model = options.model;
        return fields;
    }

    // Read the range, ask Segue, write the answer; then `finish(error)`, with error a
    // message in plain words (and the score unchanged) or null.
    function continueRange(range, options, finish) {
        var url = serverUrl(options.server), score = curScore, events, target, before;
        try {
            events = readEvents(range);
            target = targetBars(range, options.bars);
            before = fingerprint(range, target);
        } catch (e) { finish(e.message); return; }
        var body = requestBody(options, { events: events, bars: options.bars, bar_meters: target.meters });
        ask(url, body, options, function (status, text) {
            try {
                var doc = answerEvents(url, status, text);
                if (!sameScore(score, curScore) || fingerprint(range, target) !== before)
                    throw new Error("The score changed while Segue was working (in or after the selected bars); "
                                    + "nothing was written. Click Continue again.");
                writeAnswer(range, doc, target);
                finish(null);
            } catch (e) {
                finish(e.message || String(e));
            }
        });
    }

    // Fill: the selected bars written anew between the bars around them (up to fillContext
    // bars on each side, sent with the selection to /v1/fill), in one undo step. The answer is
    // the whole stretch; its gap is written over the selection as Continue writes its bars
    // after a selection (the bars before the gap play the selection's part).
    function fillRange(range, options, finish) {
        var url = serverUrl(options.server), score = curScore, measures = range.measures;
        var first = Math.max(0, range.first - fillContext);
        var last = Math.min(measures.length - 1, range.last + fillContext);
        var around = { start: measures[first].start, end: measures[last].end, firstStaff: range.firstStaff,
                       lastStaff: range.lastStaff, measures: measures, first: first, last: last };
        var before = { start: measures[first].start, end: range.start, firstStaff: range.firstStaff,
                       lastStaff: range.lastStaff, measures: measures, first: first, last: range.first - 1 };
        var bars = range.last - range.first + 1, events, target, print;
        try {
            events = readEvents(around);
            target = targetBars(before, bars);
            print = fingerprint(before, target);
        } catch (e) { finish(e.message); return; }
        // the events number their bars from 1 (a pickup is sent as a whole bar)
        var body = requestBody(options, { events: events, gap: [range.first - first + 1, range.last - first + 1] });
        var pickup = minus(fromTicks(measures[first].nominalTicks), fromTicks(measures[first].end - measures[first].start));
        var offset = plus(fromTicks(range.start - measures[first].start), pickup);
        options.path = "/v1/fill";
        ask(url, body, options, function (status, text) {
            try {
                var doc = gapOf(answerEvents(url, status, text), offset, target.span);
                if (!sameScore(score, curScore) || fingerprint(before, target) !== print)
                    throw new Error("The score changed while Segue was working (in or after the selected bars); "
                                    + "nothing was written. Click Fill again.");
                writeAnswer(before, doc, target);
                finish(null);
            } catch (e) {
                finish(e.message || String(e));
            }
        });
    }

    // The events of `doc` from `offset` for `span`, timed from `offset`.
    function gapOf(doc, offset, span) {
        var end = plus(offset, span), staves = [];
        var inside = function (onset) { return cmp(onset, offset) >= 0 && cmp(onset, end) < 0; };
        for (var s = 0; s < doc.staves.length; s++) {
            var events = [];
            for (var i = 0; i < doc.staves[s].length; i++) {
                var e = doc.staves[s][i], onset = parseFrac(e.onset, "onset");
                if (!inside(onset)) continue;
                events.push({ onset: fracText(minus(onset, offset)), duration: e.duration, pitches: e.pitches,
                              tpcs: e.tpcs, tie: e.tie, voice: e.voice });
            }
            staves.push(events);
        }
        var gap = { time_signature: doc.time_signature, key: doc.key, staves: staves };
        if (doc.chords instanceof Array) {
            gap.chords = [];
            for (i = 0; i < doc.chords.length; i++) {
                var chord = doc.chords[i], at = parseFrac(chord.onset, "a chord's onset");
                if (inside(at))
                    gap.chords.push({ staff: chord.staff, onset: fracText(minus(at, offset)), symbol: chord.symbol });
            }
        }
        return gap;
    }

    // Add part: a new part for the selected bars (options.add: bass, voice or chords), in one
    // undo step. The selected staves are the given music (sent to /v1/accompany) and stay as
    // they are. A bass or voice goes into staff options.into (by default the one below the
    // selection), which must hold no notes in those bars; chord symbols go above the
    // selection's first staff, replacing those its bars held.
    function accompanyRange(range, options, finish) {
        var url = serverUrl(options.server), score = curScore, measures = range.measures;
        var chords = options.add === "chords";
        var staff = chords ? range.firstStaff : options.into === null ? range.lastStaff + 1 : options.into;
        // the bars to write, as the bars after an empty stretch just before them
        var into = { start: range.start, end: range.start, firstStaff: staff, lastStaff: staff,
                     measures: measures, first: range.first, last: range.first - 1 };
        var given = { start: range.start, end: range.start, firstStaff: range.firstStaff,
                      lastStaff: range.lastStaff, measures: measures, first: range.first, last: range.first - 1 };
        var events, target, print;
        try {
            if (!chords) checkEmptyStaff(range, staff);
            events = readEvents(range);
            target = targetBars(into, range.last - range.first + 1);
            print = fingerprint(into, target) + fingerprint(given, target);
        } catch (e) { finish(e.message); return; }
        var body = requestBody(options, { events: events, add: options.add });
        var bar = measures[range.first];
        var pickup = minus(fromTicks(bar.nominalTicks), fromTicks(bar.end - bar.start));
        options.path = "/v1/accompany";
        ask(url, body, options, function (status, text) {
            try {
                var answer = gapOf(answerEvents(url, status, text), pickup, target.span);
                var doc = { time_signature: answer.time_signature, key: answer.key, staves: [] };
                if (chords) {
                    doc.chords = [];
                    for (var i = 0; answer.chords && i < answer.chords.length; i++)
                        if (answer.chords[i].staff === 0) doc.chords.push(answer.chords[i]);
                } else if (answer.staves.length > events.staves.length) {
                    doc.staves = [answer.staves[answer.staves.length - 1]];     // the new part comes last
                } else {
                    throw new Error("Segue's answer has no new part in it.");
                }
                if (!sameScore(score, curScore) || fingerprint(into, target) + fingerprint(given, target) !== print)
                    throw new Error("The score changed while Segue was working (in the selected bars or the "
                                    + "staff to write into); nothing was written. Click Add part again.");
                writeAnswer(into, doc, target);
                finish(null);
            } catch (e) {
                finish(e.message || String(e));
            }
        });
    }

    // A staff a new part may go into: in the score, not selected, and without notes in the
    // selected bars (a part is added, never written over one).
    function checkEmptyStaff(range, staff) {
        var bars = "bars " + (range.first + 1) + "-" + (range.last + 1);
        if (staff >= curScore.nstaves)
            throw new Error("There is no staff " + (staff + 1) + " to write the new part into (the score has "
                            + curScore.nstaves + "). Add an instrument for it, or set Into staff, then click "
                            + "Add part again.");
        if (staff >= range.firstStaff && staff <= range.lastStaff)
            throw new Error("Staff " + (staff + 1) + " is selected: its notes are what the new part goes with. "
                            + "Set Into staff to an empty staff.");
        for (var voice = 0; voice < 4; voice++) {
            var c = curScore.newCursor();
            c.staffIdx = staff; c.voice = voice; c.rewind(0);
            for (; c.segment && c.tick < range.end; c.next())
                if (c.tick >= range.start && c.element && c.element.type === Element.CHORD)
                    throw new Error("Staff " + (staff + 1) + " has notes in " + bars + ", and Add part writes "
                                    + "only into an empty staff. Set Into staff to another one, or delete "
                                    + "those notes first.");
        }
    }

    // QML wraps the score anew on each access; is() came in MuseScore 3.3.
    function sameScore(a, b) {
        if (!a || !b) return false;
        return typeof a.is === "function" ? a.is(b) : a.scoreName === b.scoreName && a.nstaves === b.nstaves;
    }

    // Batch mode: the job file named by SEGUE_PLUGIN_BATCH, or null.
    function batchJob() {
        file.source = "/proc/self/environ";              // QML has no getenv
        if (!file.exists()) return null;
        var vars = file.read().split("\u0000");
        for (var i = 0; i < vars.length; i++)
            if (vars[i].indexOf("SEGUE_PLUGIN_BATCH=") === 0) return vars[i].substring(19);
        return null;
    }

    function runBatch(path) {
        var job;
        file.source = path;
        try { job = JSON.parse(file.read()); } catch (e) { console.log("segue: cannot read " + path); return; }
        var output = String(job.output);
        file.source = output + ".error";
        if (file.exists()) file.remove();                // from an earlier run
        var fail = function (message) {
            file.source = output + ".error";
            file.write(message + "\n");
            console.log("segue: " + message);
        };
        var measures = scoreMeasures();
        var first = job.first_measure, last = job.last_measure;
        var staff = job.staff || 0, lastStaff = job.last_staff === undefined ? staff : job.last_staff;
        if (!(first >= 1 && last >= first && last <= measures.length))
            return fail("Bars " + first + "-" + last + " are not in the score, which has " + measures.length + " bars.");
        if (!(staff >= 0 && lastStaff >= staff && lastStaff < curScore.nstaves))
            return fail("Staves " + staff + "-" + lastStaff + " are not in the score, which has " + curScore.nstaves + ".");
        cmd("select-all");                               // ties are found among selected elements on 3.2
        var range = { start: measures[first - 1].start, end: measures[last - 1].end, firstStaff: staff,
                      lastStaff: lastStaff, measures: measures, first: first - 1, last: last - 1 };
        var options = { server: job.server, bars: job.bars || 4, temperature: job.temperature === undefined ? 1.0 : job.temperature,
                        seed: job.seed === undefined ? null : job.seed, top_p: job.top_p, model: job.model,
                        idleExit: job.idle_exit || idleMinutes, wait: true,
                        add: job.add || "bass", into: job.into_staff === undefined ? null : job.into_staff };
        var act = job.action === "fill" ? fillRange : job.action === "accompany" ? accompanyRange : continueRange;
        act(range, options, function (error) {
            if (error) return fail(error);
            var extension = output.substring(output.lastIndexOf(".") + 1).toLowerCase();
            if (!writeScore(curScore, output, extension)) fail("MuseScore could not save " + output + ".");
        });
    }

    // ------------------------------------------------------------------ dialog

    function closePlugin() {
        if (timeout.running) {                          // closed while waiting: drop the answer
            timeout.stop();
            timeout.xhr.abort();
        }
        starter.stop();                                 // a server being started starts anyway
        if (typeof quit === "function") quit(); else Qt.quit();      // Qt.quit() crashes MuseScore 4
    }

    // The sampling settings of the dialog as request options (kept for the next run), or null
    // once the dialog has said what is wrong with them.
    function dialogOptions(bars) {
        var temperature = parseFloat(temperatureField.text), seedText = seedField.text.trim();
        var model = modelField.text.trim();
        if (!(temperature > 0 && temperature <= 5)) return report("Temperature: a number such as 1.0 (0.1 to 5).", true);
        if (seedText !== "" && !/^\d+$/.test(seedText)) return report("Seed: a whole number, or empty for a random one.", true);
        if (model !== "" && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(model))
            return report("Model: a model's name, such as segue-open, or empty for the default.", true);
        settings.temperature = temperature; settings.seed = seedText; settings.model = model;
        settings.server = serverField.text = serverUrl(serverField.text);
        return { server: settings.server, bars: bars, temperature: temperature,
                 seed: seedText === "" ? null : parseInt(seedText, 10), model: model === "" ? undefined : model,
                 idleExit: idleMinutes, wait: false };
    }

    // Run `work` (continueRange, fillRange or accompanyRange) on the selection, saying what
    // it asks for (`asking(options)`) and then what it did (`success(range, options)`) or what
    // went wrong. `what`: what to select, for when nothing is; `bars`: the bars to write, null
    // for as many as are selected.
    function act(what, bars, work, asking, success) {
        if (busy) return;
        var range = curScore ? selectedRange() : null;
        if (!range) return report("Nothing is selected. Select " + what + " (click the first bar, Shift+click "
                                  + "the last), then try again.", true);
        var options = dialogOptions(bars === null ? range.last - range.first + 1 : bars);
        if (!options) return;
        busy = true;
        report(asking(options), false);
        work(range, options, function (error) {
            busy = false;
            if (error) return report(error, true);
            report(success(range, options), false);
        });
    }

    function barsText(n) { return n + (n === 1 ? " bar" : " bars"); }

    function start() {
        var bars = parseInt(barsField.text, 10);
        if (!(bars >= 1 && bars <= 64)) return report("Bars to add: a number from 1 to 64.", true);
        settings.bars = bars;
        act("the bars to continue", bars, continueRange,
            function (options) { return "Asking Segue for " + barsText(bars) + "…"; },
            function (range) { return "Added " + barsText(bars) + " after bar " + (range.last + 1) + ". Edit > Undo takes them back."; });
    }

    // The Fill button: the selected bars written anew, the sampling settings as for Continue.
    function startFill() {
        act("the bars to write anew", null, fillRange,
            function (options) { return "Asking Segue to fill " + barsText(options.bars) + "…"; },
            function (range) { return "Wrote bars " + (range.first + 1) + "-" + (range.last + 1) + " anew. Edit > Undo takes them back."; });
    }

    // The Add part button: the part chosen in the dialog, for the selected bars.
    function startAccompany() {
        var intoText = intoField.text.trim();
        if (intoText !== "" && !/^[1-9]\d*$/.test(intoText))
            return report("Into staff: a staff number (1 is the top staff), or empty for the staff below "
                          + "the selection.", true);
        settings.part = part; settings.into = intoText;
        var add = part, into = intoText === "" ? null : parseInt(intoText, 10) - 1;
        act("the bars to add a part to", null, function (range, options, finish) {
                options.add = add; options.into = into;
                accompanyRange(range, options, finish);
            },
            function (options) { return "Asking Segue for " + parts[add] + "…"; },
            function (range) {
                var bars = "bars " + (range.first + 1) + "-" + (range.last + 1) + ". Edit > Undo takes it back.";
                return "Wrote " + parts[add] + (add === "chords" ? " above " + bars
                       : " into staff " + ((into === null ? range.lastStaff + 1 : into) + 1) + ", " + bars);
            });
    }

    function report(message, isError) {
        status = message;
        failed = isError;
    }

    onRun: {
        var job = batchJob();
        if (job) {
            runBatch(job);
            closePlugin();
            return;
        }
        settings = makeSettings();
        barsField.text = settings.bars;
        var t = settings.temperature;
        temperatureField.text = t % 1 === 0 ? t.toFixed(1) : String(t);
        seedField.text = settings.seed;
        modelField.text = settings.model || "";
        part = parts[settings.part] ? settings.part : "bass";
        intoField.text = settings.into;
        serverField.text = settings.server || defaultServer;
        if (!curScore) report("Open a score first.", true);
        else if (!selectedRange()) report("Select the bars to continue first (click the first bar, Shift+click the last).", true);
        else report("Segue will write the new bars right after the selection.", false);
    }

    Rectangle {
        anchors.fill: parent
        color: "#f7f7f5"
        border.color: "#c4c4c4"

        Column {
            anchors.fill: parent
            anchors.margins: 16
            spacing: 12

            Text {
                text: "Continue, fill or add a part"
                font.pixelSize: 16
                font.bold: true
                color: "#222222"
            }

            Grid {
                columns: 2
                columnSpacing: 12
                rowSpacing: 8
                verticalItemAlignment: Grid.AlignVCenter

                Text { text: "Bars to add"; color: "#333333"; width: 110 }
                Rectangle {
                    width: 70; height: 26; radius: 3; color: "white"
                    border.color: barsField.activeFocus ? "#3d7bd9" : "#b8b8b8"
                    TextInput {
                        id: barsField
                        anchors.fill: parent; anchors.margins: 5
                        validator: IntValidator { bottom: 1; top: 64 }
                        selectByMouse: true
                        onAccepted: segue.start()
                    }
                }

                Text { text: "Temperature"; color: "#333333" }
                Rectangle {
                    width: 70; height: 26; radius: 3; color: "white"
                    border.color: temperatureField.activeFocus ? "#3d7bd9" : "#b8b8b8"
                    TextInput {
                        id: temperatureField
                        anchors.fill: parent; anchors.margins: 5
                        selectByMouse: true
                        onAccepted: segue.start()
                    }
                }

                Text { text: "Seed"; color: "#333333" }
                Rectangle {
                    width: 120; height: 26; radius: 3; color: "white"
                    border.color: seedField.activeFocus ? "#3d7bd9" : "#b8b8b8"
                    TextInput {
                        id: seedField
                        anchors.fill: parent; anchors.margins: 5
                        selectByMouse: true
                        onAccepted: segue.start()
                        Text {
                            text: "random"; color: "#9a9a9a"
                            visible: !seedField.text && !seedField.activeFocus
                        }
                    }
                }

                Text { text: "Model"; color: "#333333" }
                Rectangle {
                    width: 230; height: 26; radius: 3; color: "white"
                    border.color: modelField.activeFocus ? "#3d7bd9" : "#b8b8b8"
                    TextInput {
                        id: modelField
                        anchors.fill: parent; anchors.margins: 5
                        selectByMouse: true
                        clip: true
                        onAccepted: segue.start()
                        Text {
                            text: "the default (segue-gpt2-6m)"; color: "#9a9a9a"
                            visible: !modelField.text && !modelField.activeFocus
                        }
                    }
                }

                Text { text: "Server"; color: "#333333" }
                Rectangle {
                    width: 230; height: 26; radius: 3; color: "white"
                    border.color: serverField.activeFocus ? "#3d7bd9" : "#b8b8b8"
                    TextInput {
                        id: serverField
                        anchors.fill: parent; anchors.margins: 5
                        selectByMouse: true
                        clip: true
                        onAccepted: segue.start()
                    }
                }

                Text { text: "Part to add"; color: "#333333" }
                Row {
                    spacing: 4
                    Rectangle {
                        width: 62; height: 26; radius: 3
                        color: segue.part === "bass" ? "#3d7bd9" : "white"
                        border.color: segue.part === "bass" ? "#3d7bd9" : "#b8b8b8"
                        Text { anchors.centerIn: parent; text: "Bass"; color: segue.part === "bass" ? "white" : "#222222" }
                        MouseArea { anchors.fill: parent; onClicked: segue.part = "bass" }
                    }
                    Rectangle {
                        width: 62; height: 26; radius: 3
                        color: segue.part === "voice" ? "#3d7bd9" : "white"
                        border.color: segue.part === "voice" ? "#3d7bd9" : "#b8b8b8"
                        Text { anchors.centerIn: parent; text: "Voice"; color: segue.part === "voice" ? "white" : "#222222" }
                        MouseArea { anchors.fill: parent; onClicked: segue.part = "voice" }
                    }
                    Rectangle {
                        width: 62; height: 26; radius: 3
                        color: segue.part === "chords" ? "#3d7bd9" : "white"
                        border.color: segue.part === "chords" ? "#3d7bd9" : "#b8b8b8"
                        Text { anchors.centerIn: parent; text: "Chords"; color: segue.part === "chords" ? "white" : "#222222" }
                        MouseArea { anchors.fill: parent; onClicked: segue.part = "chords" }
                    }
                }

                Text { text: "Into staff"; color: "#333333" }
                Rectangle {
                    width: 70; height: 26; radius: 3; color: "white"
                    border.color: intoField.activeFocus ? "#3d7bd9" : "#b8b8b8"
                    opacity: segue.part === "chords" ? 0.4 : 1
                    TextInput {
                        id: intoField
                        anchors.fill: parent; anchors.margins: 5
                        validator: IntValidator { bottom: 1; top: 999 }
                        selectByMouse: true
                        enabled: segue.part !== "chords"
                        onAccepted: segue.startAccompany()
                        Text {
                            text: "below"; color: "#9a9a9a"
                            visible: !intoField.text && !intoField.activeFocus
                        }
                    }
                }
            }

            Text {
                width: parent.width
                height: 52
                wrapMode: Text.WordWrap
                text: segue.status + (segue.busy ? "   " + "●●●".substring(0, dots.count % 4) : "")
                color: segue.failed ? "#b3261e" : "#333333"
                Timer { id: dots; property int count: 0; interval: 400; repeat: true; running: segue.busy; onTriggered: count++ }
            }

            Row {
                spacing: 10
                Rectangle {
                    width: 96; height: 30; radius: 4
                    color: segue.busy ? "#9bb6e0" : (continueArea.pressed ? "#2c63b8" : "#3d7bd9")
                    Text { anchors.centerIn: parent; text: segue.busy ? "Working…" : "Continue"; color: "white"; font.bold: true }
                    MouseArea { id: continueArea; anchors.fill: parent; enabled: !segue.busy; onClicked: segue.start() }
                }
                Rectangle {
                    width: 60; height: 30; radius: 4
                    color: segue.busy ? "#9bb6e0" : (fillArea.pressed ? "#2c63b8" : "#3d7bd9")
                    Text { anchors.centerIn: parent; text: "Fill"; color: "white"; font.bold: true }
                    MouseArea { id: fillArea; anchors.fill: parent; enabled: !segue.busy; onClicked: segue.startFill() }
                }
                Rectangle {
                    width: 90; height: 30; radius: 4
                    color: segue.busy ? "#9bb6e0" : (accompanyArea.pressed ? "#2c63b8" : "#3d7bd9")
                    Text { anchors.centerIn: parent; text: "Add part"; color: "white"; font.bold: true }
                    MouseArea { id: accompanyArea; anchors.fill: parent; enabled: !segue.busy; onClicked: segue.startAccompany() }
                }
                Rectangle {
                    width: 70; height: 30; radius: 4
                    color: closeArea.pressed ? "#d0d0d0" : "#e4e4e4"
                    border.color: "#b8b8b8"
                    Text { anchors.centerIn: parent; text: "Close"; color: "#222222" }
                    MouseArea { id: closeArea; anchors.fill: parent; onClicked: segue.closePlugin() }
                }
            }
        }
    }
}
