// The terminal page's hex view: device bytes as `hexdump -C` lines instead
// of raw terminal output.
//
// Bytes come in chunks of any size, so the last row is usually partial: it
// is shown at once and redrawn in place (carriage return, erase line) as
// bytes join it, so a byte is visible as soon as it arrives and no timer is
// needed. Each row is labelled with the device offset of its first byte.

const ROW = 16;
const CLEAR_LINE = "\r\x1b[2K";

function hex2(b) {
  return b.toString(16).padStart(2, "0");
}

function formatRow(offset, row) {
  let hexPart = "";
  let text = "";
  for (let i = 0; i < ROW; i++) {
    if (i === 8) hexPart += " ";
    if (i < row.length) {
      const b = row[i];
      hexPart += `${hex2(b)} `;
      text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
    } else {
      hexPart += "   ";
    }
  }
  return `${offset.toString(16).padStart(8, "0")}  ${hexPart} |${text}|`;
}

export class HexView {
  /** offset: the device offset of the next byte. */
  constructor(offset) {
    this.offset = offset;
    this.row = [];
  }

  /** The text that shows `bytes` (a Uint8Array) after what came before. */
  feed(bytes) {
    let out = "";
    for (const b of bytes) {
      this.row.push(b);
      if (this.row.length === ROW) {
        out += `${CLEAR_LINE}${formatRow(this.offset, this.row)}\r\n`;
        this.offset += ROW;
        this.row = [];
      }
    }
    if (this.row.length > 0) out += `${CLEAR_LINE}${formatRow(this.offset, this.row)}`;
    return out;
  }

  /** Ends the partial row (before a marker) and continues at `offset`
   * (after dropped bytes or a gap; by default where it is): the text to
   * write first. */
  restart(offset = this.offset + this.row.length) {
    const out = this.row.length > 0 ? "\r\n" : "";
    this.offset = offset;
    this.row = [];
    return out;
  }
}
