// A tRPC v11 app with the superjson transformer, as the Linguamate app
// serves its procedures: the upstream of the edge in t/057-trpc-client.t,
// one router served by one of three adapters.
//   node server.mjs PORT [standalone|fetch|express|express-json]
// - standalone: createHTTPServer, basePath /api/trpc/ (exact);
// - fetch: fetchRequestHandler behind a node http server that turns each
//   request into a fetch Request, as Hono or Next's app router do (the
//   fetch adapter trims slashes around the procedure path);
// - express: createExpressMiddleware mounted at /api/trpc (it reads only
//   the last path segment);
// - express-json: the same behind express.json() (body-parser), which
//   many apps add: tRPC then takes the body it parsed (body-parser
//   inflates gzip and honours the charset of Content-Type).
import http from 'node:http';
import { Readable } from 'node:stream';
import express from 'express';
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { createExpressMiddleware } from '@trpc/server/adapters/express';
import superjson from 'superjson';

const t = initTRPC.context().create({ transformer: superjson });
const any = (v) => v;

// the account as the app compares accounts
const account = (input) =>
  typeof input?.email === 'string' ? input.email.trim().toLowerCase() : `(${typeof input?.email})`;

const appRouter = t.router({
  auth: t.router({
    login: t.procedure.input(any).mutation(({ input }) => {
      if (input && input.password === 'good') {
        return { token: 'app-token', issuedAt: new Date(0) };
      }
      // the account the app read, so that a test sees it
      throw new TRPCError({ code: 'UNAUTHORIZED', message: `Invalid credentials for ${account(input)}` });
    }),
  }),
  user: t.router({
    me: t.procedure.query(({ ctx }) => ({
      userId: ctx.userId, sessionId: ctx.sessionId, correlationId: ctx.corr,
    })),
  }),
  chat: t.router({
    send: t.procedure.input(any).mutation(({ input }) => ({ echo: input })),
  }),
});

const context = (get) => ({
  userId: get('x-user-id') ?? null,
  sessionId: get('x-session-id') ?? null,
  corr: get('x-correlation-id') ?? null,
});

const port = Number(process.argv[2]);
const adapter = process.argv[3] ?? 'standalone';

if (adapter === 'standalone') {
  createHTTPServer({
    router: appRouter,
    basePath: '/api/trpc/',
    createContext: ({ req }) => context((h) => req.headers[h]),
  }).listen(port, '127.0.0.1');
} else if (adapter === 'fetch') {
  http.createServer(async (req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url}`, {
      method: req.method,
      headers: Object.entries(req.headers).flatMap(([k, v]) =>
        (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]])),
      body: hasBody ? Readable.toWeb(req) : undefined,
      duplex: 'half',
    });
    const response = await fetchRequestHandler({
      endpoint: '/api/trpc',
      req: request,
      router: appRouter,
      createContext: ({ req: r }) => context((h) => r.headers.get(h)),
    });
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  }).listen(port, '127.0.0.1');
} else if (adapter === 'express' || adapter === 'express-json') {
  const app = express();
  if (adapter === 'express-json') {
    app.use(express.json());
  }
  app.use('/api/trpc', createExpressMiddleware({
    router: appRouter,
    createContext: ({ req }) => context((h) => req.headers[h]),
  }));
  app.listen(port, '127.0.0.1');
} else {
  throw new Error(`unknown adapter ${adapter}`);
}
