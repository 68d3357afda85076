/*! footfall tracker: no cookies, no storage */
!function(W,D){
function G(f){return function(){try{return f.apply(this,arguments)}catch(x){}}}
G(function(){
var S=D.currentScript,L=location,N=navigator,T=Date.now,M=Math,
 A=S.dataset,
 on=function(t,k,f){t.addEventListener(k,G(f))},
 api=A.api||new URL(S.src).origin+'/api/event',hm='hash'in A,every=(+A.heartbeat||30)*1e3,
 q=W.footfall&&W.footfall.q||[],ms=0,vis=0,sd=0,cur,key,tm,hb,bc,
 no=!('allowLocalhost'in A)&&(/^(localhost|127\..*|\[::1]|)$/.test(L.hostname)||N.webdriver||W._phantom||W.__nightmare||W.Cypress)||
  'respectDnt'in A&&(N.doNotTrack==1||N.globalPrivacyControl);
function send(n,o,u,x){
 o=o||{};
 var cb=G(o.callback),b={n:n,u:u||L.href,d:A.domain,r:D.referrer,p:o.props,h:hm},k;
 try{if(localStorage.footfall_ignore=='true')no=1}catch(e){}
 if(no)return cb();
 for(k in x)b[k]=x[k];
 fetch(api,{method:'POST',body:JSON.stringify(b),keepalive:!0,credentials:'omit'}).then(cb,cb)
}
function scroll(){sd=M.max(sd,M.min(100,(scrollY+innerHeight)/D.documentElement.scrollHeight*100))}
// engagement: visible ms since last report, max scroll %; h: hidden or left
function engage(h){
 if(vis)ms+=T()-vis,vis=!h&&T();
 if(cur&&ms)send('engagement',0,cur,{e:ms,sd:sd});
 ms=0
}
function page(){
 var k=L.pathname+(hm?L.hash:'');
 if(k==key)return;
 engage();
 key=k;cur=L.href;sd=0;vis=!D.hidden&&T();
 scroll();
 send('pageview',0,cur,{t:D.title})
}
// SPA: URL and title a moment later
function nav(){clearTimeout(tm);tm=setTimeout(G(page),99)}
// heartbeat: the first visible tab to fire sends, the others wait longer
function beat(f){
 clearTimeout(hb);
 hb=setTimeout(G(function(){if(!D.hidden)send('heartbeat'),bc&&bc.postMessage(1);beat()}),every*((f?1.5:1)+M.random()/9))
}
try{bc=new BroadcastChannel('footfall');bc.onmessage=beat}catch(e){}
on(D,'visibilitychange',function(){D.hidden?engage(1):vis=T()});
on(W,'pagehide',engage);
on(W,'scroll',scroll);
['pushState','replaceState'].forEach(function(m){
 var f=history[m];
 history[m]=function(){f.apply(this,arguments);nav()}
});
on(W,'popstate',nav);
if(hm)on(W,'hashchange',nav);
function click(e){
 var a=e.target.closest('a'),u=a&&a.href,p=(u||'').split(/[?#]/)[0];
 if(/^http/.test(u)&&e.button<2)
  'fileDownloads'in A&&/\.(pdf|zip|gz|7z|dmg|exe|msi|apk|csv|docx?|xlsx?|pptx?|mp3|mp4)$/i.test(p)?send('File Download',{props:{url:p}}):
  'outboundLinks'in A&&a.host!=L.host&&send('Outbound Link: Click',{props:{url:u}})
}
on(D,'click',click);
on(D,'auxclick',click);
W.footfall=G(send);
page();
beat(1);
for(var i in q)send.apply(0,q[i])
})()
}(window,document);
