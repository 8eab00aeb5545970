/**
 * A deliberately small XML reader for what UPnP-IGD needs (a device
 * description and SOAP responses from a box on the LAN), written instead of
 * pulling a general XML library into the agent. It reads elements, text,
 * CDATA, comments and processing instructions; it refuses DOCTYPE and every
 * other `<!` declaration, so there are no entities to expand and nothing to
 * fetch; it decodes only the five predefined entities and character
 * references. Attributes are checked for well-formedness and dropped.
 * Element names are kept without their namespace prefix.
 *
 * Bounded: input length, nesting depth and element count; anything over a
 * bound, malformed, or not a single root element gives null. Never throws.
 */

export interface XmlElement {
  /** Local name (prefix removed). */
  name: string;
  children: XmlElement[];
  /** The element's own text (CDATA included), entities decoded, untrimmed. */
  text: string;
}

export interface XmlLimits {
  maxChars: number;
  maxDepth: number;
  maxElements: number;
}

export const XML_LIMITS: XmlLimits = { maxChars: 64 * 1024, maxDepth: 24, maxElements: 2048 };

const NAME = /[A-Za-z_][\w.:-]*/y;
const ATTR = /\s*([A-Za-z_][\w.:-]*)\s*=\s*("[^"<]*"|'[^'<]*')/y;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string | null {
  if (!s.includes('&')) return s;
  let bad = false;
  const out = s.replace(/&([^;&\s]{1,10});|&/g, (_m, ref: string | undefined) => {
    if (ref === undefined) {
      bad = true;
      return '';
    }
    if (ref in ENTITIES) return ENTITIES[ref]!;
    const code = /^#x[0-9a-fA-F]{1,6}$/.test(ref) ? parseInt(ref.slice(2), 16) : /^#[0-9]{1,7}$/.test(ref) ? Number(ref.slice(1)) : -1;
    if (code < 1 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
      bad = true;
      return '';
    }
    return String.fromCodePoint(code);
  });
  return bad ? null : out;
}

const localName = (q: string): string => q.slice(q.indexOf(':') + 1);

export function parseXml(src: string, limits: XmlLimits = XML_LIMITS): XmlElement | null {
  if (typeof src !== 'string' || src.length > limits.maxChars) return null;
  const stack: Array<{ el: XmlElement; qname: string }> = [];
  let root: XmlElement | null = null;
  let count = 0;
  let i = src.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = src.length;
  while (i < n) {
    const lt = src.indexOf('<', i);
    const textEnd = lt < 0 ? n : lt;
    if (textEnd > i) {
      const raw = src.slice(i, textEnd);
      const top = stack[stack.length - 1];
      if (top) {
        const t = decode(raw);
        if (t === null) return null;
        top.el.text += t;
      } else if (raw.trim()) return null; // text outside the root element
    }
    if (lt < 0) break;
    if (src.startsWith('<?', lt)) {
      const end = src.indexOf('?>', lt + 2);
      if (end < 0) return null;
      i = end + 2;
    } else if (src.startsWith('<!--', lt)) {
      const end = src.indexOf('-->', lt + 4);
      if (end < 0) return null;
      i = end + 3;
    } else if (src.startsWith('<![CDATA[', lt)) {
      const end = src.indexOf(']]>', lt + 9);
      const top = stack[stack.length - 1];
      if (end < 0 || !top) return null;
      top.el.text += src.slice(lt + 9, end);
      i = end + 3;
    } else if (src.startsWith('<!', lt)) {
      return null; // DOCTYPE, ENTITY and friends: never
    } else if (src.startsWith('</', lt)) {
      const end = src.indexOf('>', lt + 2);
      if (end < 0) return null;
      const qname = src.slice(lt + 2, end).trim();
      const top = stack.pop();
      if (!top || top.qname !== qname) return null;
      i = end + 1;
    } else {
      NAME.lastIndex = lt + 1;
      const m = NAME.exec(src);
      if (!m) return null;
      const qname = m[0];
      let j = NAME.lastIndex;
      for (;;) {
        ATTR.lastIndex = j;
        const a = ATTR.exec(src);
        if (!a) break;
        j = ATTR.lastIndex;
      }
      while (j < n && /\s/.test(src[j]!)) j++;
      let selfClosing = false;
      if (src.startsWith('/>', j)) {
        selfClosing = true;
        j += 2;
      } else if (src[j] === '>') j += 1;
      else return null;
      if (++count > limits.maxElements) return null;
      const el: XmlElement = { name: localName(qname), children: [], text: '' };
      const parent = stack[stack.length - 1];
      if (parent) parent.el.children.push(el);
      else if (root) return null; // a second root
      else root = el;
      if (!selfClosing) {
        if (stack.length >= limits.maxDepth) return null;
        stack.push({ el, qname });
      }
      i = j;
    }
  }
  return stack.length === 0 ? root : null;
}

/** Direct children named `name`. */
export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** The first direct child named `name`. */
export function childNamed(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

/** Every element named `name` below `el` (document order). */
export function descendantsNamed(el: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement): void => {
    for (const c of e.children) {
      if (c.name === name) out.push(c);
      walk(c);
    }
  };
  walk(el);
  return out;
}

/** Trimmed text of the first direct child named `name` ('' if none). */
export function childText(el: XmlElement, name: string): string {
  return childNamed(el, name)?.text.trim() ?? '';
}
