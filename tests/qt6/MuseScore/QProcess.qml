// MuseScore's MsProcess, available to plug-ins as QProcess: start(command) (deprecated in 4.x:
// under Qt 6 the whole command is taken as the program's name), startWithArgs(program, args)
// (4.3+), waitForFinished(msecs), readAllStandardOutput() (a QByteArray: an ArrayBuffer in
// QML). The broker runs the program for real.
import QtQml 2.15
import "../harness.js" as Harness

QtObject {
    id: process
    property int __id: -1

    function start(command) {
        Harness.record("QProcess.start", [command]);
        __id = Harness.ask("POST", "/process/start", { program: command, args: [] }).id;
    }
    function startWithArgs(program, args) {
        var plain = [];
        for (var i = 0; i < args.length; i++) plain.push(String(args[i]));
        Harness.record("QProcess.startWithArgs", [program, plain]);
        __id = Harness.ask("POST", "/process/start", { program: program, args: plain }).id;
    }
    function waitForFinished(msecs) {
        Harness.record("QProcess.waitForFinished", [msecs]);
        if (__id < 0) return false;
        return Harness.ask("POST", "/process/wait", { id: __id, msecs: msecs === undefined ? 30000 : msecs }).finished;
    }
    function readAllStandardOutput() {
        var text = __id < 0 ? "" : Harness.ask("POST", "/process/read", { id: __id }).text;
        var bytes = new Uint8Array(text.length);
        for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 255;
        return bytes.buffer;
    }
}
