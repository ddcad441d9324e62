// Talking to the stemscribe server: JSON requests, uploads with progress, the live event stream.

const HEADERS = { "X-Stemscribe": "1" };

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function parse(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    let detail = body && body.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new ApiError(detail || `The server answered ${response.status}.`, response.status);
  }
  return body;
}

export async function getJSON(url) {
  return parse(await fetch(url, { headers: HEADERS }));
}

export async function send(method, url) {
  return parse(await fetch(url, { method, headers: HEADERS }));
}

export const api = {
  options: () => getJSON("/api/options"),
  jobs: () => getJSON("/api/jobs"),
  job: (id) => getJSON(`/api/jobs/${id}`),
  notes: (id) => getJSON(`/api/jobs/${id}/notes`),
  report: (id) => getJSON(`/api/jobs/${id}/report`),
  cancel: (id) => send("POST", `/api/jobs/${id}/cancel`),
  retry: (id) => send("POST", `/api/jobs/${id}/retry`),
  remove: (id) => send("DELETE", `/api/jobs/${id}`),
};

export const fileUrl = {
  stem: (id, stem, download = false) => `/api/jobs/${id}/files/stem/${stem}${download ? "?download=1" : ""}`,
  midi: (id, stem, download = false) => `/api/jobs/${id}/files/midi/${stem}${download ? "?download=1" : ""}`,
  combined: (id) => `/api/jobs/${id}/files/midi?download=1`,
  zip: (id) => `/api/jobs/${id}/files/zip`,
};

/** Upload one file as a new job. onProgress(fraction) while sending; resolves to the job. */
export function upload(file, options, onProgress) {
  const params = new URLSearchParams({ name: file.name });
  for (const [key, value] of Object.entries(options)) {
    if (value !== null && value !== undefined && value !== "") params.set(key, value);
  }
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/jobs?${params}`);
    xhr.setRequestHeader("X-Stemscribe", "1");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError((body && body.detail) || `The server answered ${xhr.status}.`, xhr.status));
    };
    xhr.onerror = () => reject(new ApiError("The upload was interrupted: is stemscribe still running?", 0));
    xhr.send(file);
  });
}

/** One EventSource for the whole page; listeners get {type, job} and {type: "deleted", id}. */
const listeners = new Set();
let source = null;

export function onJobEvent(listener) {
  listeners.add(listener);
  if (!source) {
    source = new EventSource("/api/events");
    const dispatch = (e) => {
      const data = JSON.parse(e.data);
      for (const l of listeners) l(data);
    };
    source.addEventListener("job", dispatch);
    source.addEventListener("deleted", dispatch);
    // After a reconnect, ask listeners to refresh: events may have been missed.
    source.addEventListener("hello", dispatch);
  }
  return () => listeners.delete(listener);
}
