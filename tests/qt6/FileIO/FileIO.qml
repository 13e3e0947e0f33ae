// MuseScore's FileIO (`import FileIO 3.0`): source, read(), exists(), write(), remove(),
// homePath(), tempPath(), modifiedTime(). The broker does the file work on this machine (and
// can pretend a file is there, such as /.flatpak-info).
import QtQml 2.15
import "../harness.js" as Harness

QtObject {
    property string source: ""
    signal error(string msg)

    function op(name, data) {
        Harness.record("FileIO." + name, [source]);
        return Harness.ask("POST", "/file", { op: name, path: source, data: data }).result;
    }
    function read() { return op("read"); }
    function exists() { return op("exists"); }
    function write(data) { return op("write", data); }
    function remove() { return op("remove"); }
    function homePath() { return op("homePath"); }
    function tempPath() { return op("tempPath"); }
    function modifiedTime() { return op("modifiedTime"); }
}
